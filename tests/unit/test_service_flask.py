"""``ServiceFlask.ensure_sync`` remembers which view and hook functions are synchronous (Flask asks for
each of them on every request), and still leaves coroutine functions to Flask."""

from __future__ import annotations

import pytest

from shared.app import ServiceFlask


def test_a_synchronous_function_is_given_back_as_it_is_and_remembered():
    app = ServiceFlask("test")

    def view() -> str:
        return "ok"

    assert app.ensure_sync(view) is view
    assert app.ensure_sync(view) is view
    assert view in app._synchronous


def test_bound_methods_are_remembered_by_their_function_not_by_instance():
    app = ServiceFlask("test")

    class View:
        def get(self) -> str:
            return "ok"

    for _ in range(3):
        method = View().get  # a view is bound to a new instance for every request
        assert app.ensure_sync(method) is method
    assert app._synchronous == {View.get}


def test_a_coroutine_function_is_still_flasks_to_run():
    app = ServiceFlask("test")
    asked = []

    async def view() -> str:
        return "ok"

    def async_to_sync(func):
        asked.append(func)
        return lambda: "run"

    app.async_to_sync = async_to_sync  # type: ignore[method-assign]
    assert app.ensure_sync(view)() == "run"
    assert app.ensure_sync(view)() == "run"
    assert asked == [view, view]
    assert not app._synchronous


@pytest.mark.parametrize("path", ["/plain", "/method"])
def test_an_app_answers_through_it(path):
    from flask.views import MethodView

    app = ServiceFlask("test")
    app.add_url_rule("/plain", view_func=lambda: "plain")

    class Method(MethodView):
        def get(self) -> str:
            return "method"

    app.add_url_rule("/method", view_func=Method.as_view("method"))
    client = app.test_client()
    assert client.get(path).get_data(as_text=True) == path[1:]
    assert client.get(path).get_data(as_text=True) == path[1:]
