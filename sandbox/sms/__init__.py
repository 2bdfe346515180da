"""The SMS-gateway sandbox: an HTTP SMS provider that sends signed delivery receipts."""
