# First form of the connector image (the packaging issue pins the base image by digest and
# checks this file). Airbyte runs it as: <image> spec | check | discover | read ...
FROM python:3.11-slim

WORKDIR /airbyte/integration_code
COPY setup.py pyproject.toml main.py ./
COPY source_sp_invoices ./source_sp_invoices
RUN pip install --no-cache-dir .

ENV AIRBYTE_ENTRYPOINT="python /airbyte/integration_code/main.py"
ENTRYPOINT ["python", "/airbyte/integration_code/main.py"]

LABEL io.airbyte.name=airbyte/source-sp-invoices
LABEL io.airbyte.version=0.1.0
