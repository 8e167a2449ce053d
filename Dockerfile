# The connector image. Airbyte runs it as: <image> spec | check | discover | read ...
# The base image is pinned by digest and must equal metadata.yaml's connectorBuildOptions.baseImage:
# Python 3.11 with pip, and a non-root user `airbyte` (uid 1000) that owns /airbyte.
# integration_tests/test_dockerfile.py lints this file and replays its COPY and RUN steps.
FROM docker.io/airbyte/python-connector-base:4.0.2@sha256:9fdb1888c4264cf6fee473649ecb593f56f58e5d0096a87ee0b231777e2e3e73

WORKDIR /airbyte/integration_code

# Only what the install needs; .dockerignore keeps tests, the emulator and caches out as well.
COPY requirements.lock setup.py main.py ./
COPY source_sp_invoices ./source_sp_invoices

# Installed as root into the image's Python, so the airbyte user can run it but not change it.
# First the lock, every package at its version and hash (make lock writes it, make test installs
# the same versions); then the package alone, built by the locked setuptools rather than one that
# build isolation would fetch. pip check fails the build if anything else in the image disagrees.
# The build leftovers go: the installed package is what runs.
RUN pip install --no-cache-dir --require-hashes -r requirements.lock \
    && pip install --no-cache-dir --no-deps --no-build-isolation . \
    && pip check \
    && rm -rf build source_sp_invoices.egg-info

# The base image's user airbyte, by uid: a number lets Kubernetes' runAsNonRoot verify it.
USER 1000

# The console script of setup.py; AIRBYTE_ENTRYPOINT names the same command for the platform.
ENV AIRBYTE_ENTRYPOINT="source-sp-invoices"
ENTRYPOINT ["source-sp-invoices"]

LABEL io.airbyte.name="airbyte/source-sp-invoices"
LABEL io.airbyte.version="0.6.0"
