"""Packaging: `pip install .` installs the connector and its console script."""

from setuptools import setup

VERSION = "0.1.0"

setup(
    name="source-sp-invoices",
    version=VERSION,
    description="Airbyte source for the Amazon SP-API Invoices API (Brazilian FBA NF-e invoices).",
    python_requires=">=3.11",
    packages=["source_sp_invoices", "source_sp_invoices.streams"],
    package_data={"source_sp_invoices": ["spec.json", "schemas/*.json"]},
    install_requires=[
        "airbyte-cdk==7.39.1",
        "requests>=2.32,<3",
        "jsonschema>=4.17,<5",
        "isal>=1.6,<2",  # ISA-L inflate: twice zlib's speed on the export ZIPs
        "lxml>=6.0,<7",  # NF-e parsing: fast, and refuses entities, DTDs and network access
    ],
    extras_require={
        "tests": [
            "pytest>=8,<10",
            "requests-mock>=1.12,<2",
            "nfelib>=3.2,<4",  # real NF-e 4.00 samples and bindings to check the parser against
            "ruff==0.17.6",
        ],
    },
    entry_points={"console_scripts": ["source-sp-invoices=source_sp_invoices.run:run"]},
)
