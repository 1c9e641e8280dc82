"""preserve: a long-term digital preservation repository (OAIS, BagIt, PREMIS)."""

__version__ = "0.1.0"
AGENT_NAME = "preserve"
AGENT_PRESERVE = f"{AGENT_NAME}-{__version__}"  # the software agent of PREMIS events
