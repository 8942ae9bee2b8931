"""Who may change a server: SSH signatures and ``allowed_signers`` files, and the approvals a plan carries."""
