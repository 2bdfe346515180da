"""``python -m sandbox.sms [--host H] [--port P]``: run the SMS-gateway sandbox as a separate process."""

from sandbox.common.serve import serve
from sandbox.sms.app import create_app, stop_background_work

if __name__ == "__main__":
    serve("sms", "SMS_SANDBOX_", 8012, create_app, stop_background_work, __doc__)
