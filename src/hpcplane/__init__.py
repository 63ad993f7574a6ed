"""hpcplane: a control plane that speaks the Alibaba Cloud E-HPC API (2018-04-12)."""

__version__ = "0.1.0"
API_VERSION = "2018-04-12"
