"""judgefactory: small, trustworthy LLM judges."""

__version__ = "0.1.0"
