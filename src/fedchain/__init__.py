"""fedchain: cross-silo federated learning coordinated and recorded on a ledger."""

from fedchain.errors import FedchainError

__version__ = "0.1.0"

__all__ = ["FedchainError", "__version__"]
