"""``python -m sandbox.bank [--host H] [--port P]``: run the bank sandbox as a separate process."""

from sandbox.bank.app import create_app, stop_background_work
from sandbox.common.serve import serve

if __name__ == "__main__":
    serve("bank", "BANK_SANDBOX_", 8011, create_app, stop_background_work, __doc__)
