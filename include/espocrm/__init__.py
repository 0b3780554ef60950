"""EspoCRM REST client and its typed errors."""

from include.espocrm.client import EspoCrmClient
from include.espocrm.errors import (
    AuthError,
    BadRequestError,
    ConflictError,
    EspoCrmError,
    ForbiddenError,
    NotFoundError,
    TransientError,
    UnavailableError,
)

__all__ = [
    "AuthError",
    "BadRequestError",
    "ConflictError",
    "EspoCrmClient",
    "EspoCrmError",
    "ForbiddenError",
    "NotFoundError",
    "TransientError",
    "UnavailableError",
]
