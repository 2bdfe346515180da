"""``python -m sandbox.m2t [--host H] [--port P]``: run the M2T gateway sandbox as a separate process."""

from sandbox.common.serve import serve
from sandbox.m2t.app import create_app, stop_background_work

if __name__ == "__main__":
    serve("m2t", "M2T_SANDBOX_", 8010, create_app, stop_background_work, __doc__)
