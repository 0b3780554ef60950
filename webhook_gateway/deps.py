"""The gateway's resources, opened once in the app's lifespan (app.state.resources), and the typed
dependencies routes take them by (`runs: TargetedRunsDep`).

Every client here connects on first use, not when opened: the gateway starts and answers `/healthz`
while Redis, PostgreSQL or Airflow are down, and uses them once they are up. The plain-ASGI webhook
ingest is no route; it takes its part with `resources_of(scope["app"])`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from include.advoware.async_client import AsyncAdvowareClient
from include.airflow_api_async import AsyncAirflowApi
from include.hub.db import Hub
from include.settings import Settings
from webhook_gateway.targeted_runs import TargetedRuns
from webhook_gateway.webhook_resources import WebhookResources

# every attempt and every wait of one calendar trigger together; then 503 (standalone Airflow on SQLite
# answers 500 while locked, so a few seconds of retries are worth it, a minute of waiting is not)
CALENDAR_TRIGGER_DEADLINE_S = 15.0


@dataclass
class Resources:
    settings: Settings
    webhooks: WebhookResources
    targeted_runs: TargetedRuns
    advoware: AsyncAdvowareClient  # the proxy's pooled client
    calendar_airflow: AsyncAirflowApi  # the calendar trigger's
    channel_hub: Hub  # Google notifications: one connection per thread of google_push's pool, kept

    @classmethod
    def open(cls, settings: Settings) -> Resources:
        return cls(
            settings=settings,
            webhooks=WebhookResources(settings),
            targeted_runs=TargetedRuns(settings),
            advoware=AsyncAdvowareClient(settings.advoware, redis_url=settings.redis_url),
            calendar_airflow=AsyncAirflowApi.from_settings(settings, deadline_s=CALENDAR_TRIGGER_DEADLINE_S),
            channel_hub=Hub(settings.postgres.dsn()),
        )

    async def close(self) -> None:
        """In reverse order of opening; the webhooks' last triggers and drains finish first."""
        self.channel_hub.close()
        await self.calendar_airflow.aclose()
        await self.advoware.aclose()
        await self.targeted_runs.close()
        await self.webhooks.close()


def resources_of(app: FastAPI) -> Resources:
    resources: Resources = app.state.resources
    return resources


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_webhook_resources(request: Request) -> WebhookResources:
    return resources_of(request.app).webhooks


async def get_targeted_runs(request: Request) -> TargetedRuns:
    return resources_of(request.app).targeted_runs


async def get_advoware_client(request: Request) -> AsyncAdvowareClient:
    return resources_of(request.app).advoware


async def get_calendar_airflow(request: Request) -> AsyncAirflowApi:
    return resources_of(request.app).calendar_airflow


async def get_channel_hub(request: Request) -> Hub:
    return resources_of(request.app).channel_hub


SettingsDep = Annotated[Settings, Depends(get_settings)]
WebhookResourcesDep = Annotated[WebhookResources, Depends(get_webhook_resources)]
TargetedRunsDep = Annotated[TargetedRuns, Depends(get_targeted_runs)]
AdvowareClientDep = Annotated[AsyncAdvowareClient, Depends(get_advoware_client)]
CalendarAirflowDep = Annotated[AsyncAirflowApi, Depends(get_calendar_airflow)]
ChannelHubDep = Annotated[Hub, Depends(get_channel_hub)]
