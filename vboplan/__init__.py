"""Plan and apply settings of Veeam Backup for Microsoft 365 servers, reviewed and per environment."""

__version__ = "0.1.0"
