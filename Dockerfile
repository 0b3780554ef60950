# One image for the Airflow components, the gateway and the sandbox: a Debian-based Python 3.11 base,
# the project's pinned requirements (Airflow included) in a virtualenv of its own, and the project.
#
# The base is a build argument, so the same file builds anywhere:
#   docker build .                                              # the official image (default)
#   podman build --build-arg BASE_IMAGE=localhost/kanzlei-base:bookworm .   # a locally made base
# Everything the compose files rely on is made here, not taken from the base: the user airflow
# (uid 50000, gid 0), AIRFLOW_HOME=/opt/airflow, the project at /opt/kanzlei, the virtualenv at
# /opt/kanzlei-venv on PATH, and the entry point (dumb-init, then the service's command).
ARG BASE_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${BASE_IMAGE}

USER root

# curl (the healthchecks), dumb-init (PID 1: signals reach the service, zombies are reaped) and the
# venv module; a base that has them (the official image does) needs no apt at all.
RUN if ! command -v curl >/dev/null || ! command -v dumb-init >/dev/null \
        || ! python3 -c 'import ensurepip, venv' 2>/dev/null; then \
      apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
           ca-certificates curl dumb-init python3-venv \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3 -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version'

# The user the compose files run as (user: "${AIRFLOW_UID:-50000}:0"): group 0 owns every writable
# path, so an arbitrary AIRFLOW_UID with gid 0 can write too (the OpenShift convention Airflow follows).
RUN if ! getent passwd airflow >/dev/null; then \
      useradd --uid 50000 --gid 0 --home-dir /home/airflow --create-home --shell /bin/bash airflow; \
    fi \
    && mkdir -p /opt/airflow/logs /opt/kanzlei/.run /opt/kanzlei-venv \
    && chown -R airflow:0 /opt/airflow /opt/kanzlei /opt/kanzlei-venv \
    && chmod -R g+rwX /opt/airflow /opt/kanzlei /opt/kanzlei-venv

ENV AIRFLOW_HOME=/opt/airflow \
    VIRTUAL_ENV=/opt/kanzlei-venv \
    PATH=/opt/kanzlei-venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

USER airflow
WORKDIR /opt/kanzlei

# Dependencies first: this layer is rebuilt only when requirements.txt changes. The interpreter is the
# base's python3 in a venv of its own, so no package of the base leaks into the image. requirements.txt
# is a complete freeze: --no-deps installs exactly it, with nothing for pip's resolver to search.
COPY --chown=airflow:0 requirements.txt ./
RUN /usr/bin/env -u VIRTUAL_ENV python3 -m venv /opt/kanzlei-venv \
    && pip install --progress-bar off --no-deps -r requirements.txt

COPY --chown=airflow:0 . .
RUN pip install --progress-bar off --no-deps -e . \
    && chmod -R g+rwX /opt/kanzlei

ENTRYPOINT ["dumb-init", "--"]
CMD ["kanzlei-sync", "--help"]
