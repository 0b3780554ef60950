# One image for the Airflow components, the gateway and the sandbox: the official Airflow image
# plus the project's pinned requirements and the project itself (editable, like on a laptop).
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}

USER root
RUN mkdir -p /opt/kanzlei/.run && chown -R airflow:0 /opt/kanzlei && chmod -R g+rwX /opt/kanzlei
USER airflow
WORKDIR /opt/kanzlei

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY --chown=airflow:0 requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY --chown=airflow:0 . .
RUN pip install --no-cache-dir --no-deps -e .

ENV PYTHONUNBUFFERED=1
