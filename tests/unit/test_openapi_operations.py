"""What ``shared.openapi`` writes for an operation, read off its view: its security, its problem
answers by status and code, its Idempotency-Key, and examples built from its schemas."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from shared.app import ProblemApi
from shared.auth.flask import require_any_scope, require_scopes
from shared.errors import PROBLEM_CONTENT_TYPE
from shared.idempotency import idempotent, idempotent_when_keyed
from shared.openapi import OperationDocs, problems, security_schemes
from shared.problem_codes import CONFLICT, RESOURCE_NOT_FOUND, ProblemCode

# Not added to the catalogue (docs/errors.md is the services' codes only).
PARCEL_LOST = ProblemCode("parcel_lost_in_test", 409, "The parcel was lost.", "Send another.")


class ParcelIn(Schema):
    weight_grams = fields.Integer(required=True, validate=validate.Range(min=1, max=30_000))
    artisan_id = fields.String(required=True)


class ParcelOut(Schema):
    id = fields.String()
    object = fields.Constant("refund")
    amount = fields.Integer()
    currency = fields.String()
    status = fields.String(metadata={"example": "shipped"})
    created_at = fields.DateTime()


blp = Blueprint("parcels", __name__, url_prefix="/v1")


@blp.route("/parcels/<string:parcel_id>")
class ParcelById(MethodView):
    @require_scopes("payments:read")
    @blp.response(200, ParcelOut)
    @problems(PARCEL_LOST)
    def get(self, parcel_id):
        """One parcel."""

    @require_any_scope("payments:write", "self:write")
    @idempotent_when_keyed
    @blp.response(200, ParcelOut)
    @problems(RESOURCE_NOT_FOUND, CONFLICT)
    def delete(self, parcel_id):
        """Cancel a parcel."""


@blp.route("/parcels", methods=["POST"])
@require_scopes("payments:write", "artisans:write")
@idempotent
@blp.arguments(ParcelIn)
@blp.response(201, ParcelOut)
def create(body):
    """Send a parcel."""


@blp.route("/parcel-callbacks", methods=["POST"])
@blp.doc(security=[])
@blp.response(200, ParcelOut)
def callback():
    """A carrier's news."""


@blp.route("/forgotten", methods=["GET"])
@blp.response(200, ParcelOut)
def forgotten():
    """A view that says nothing of who may call it."""


@pytest.fixture(scope="module")
def paths():
    app = Flask(__name__)
    app.config.update(
        API_TITLE="Parcels",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        API_SPEC_OPTIONS={"components": {"securitySchemes": security_schemes("/v1/oauth/token")}},
    )
    api = ProblemApi(app, spec_kwargs={"extra_plugins": [OperationDocs(app)]})
    api.register_blueprint(blp)
    return api.spec.to_dict()["paths"]


def codes_by_status(operation):
    return {
        status: set(response["content"][PROBLEM_CONTENT_TYPE]["examples"])
        for status, response in operation["responses"].items()
        if int(status) >= 400
    }


def test_the_security_is_the_scopes_the_view_requires(paths):
    assert paths["/v1/parcels"]["post"]["security"] == [{"oauth2": ["payments:write", "artisans:write"]}]
    # Any one of require_any_scope's scopes is enough: one alternative each.
    assert paths["/v1/parcels/{parcel_id}"]["delete"]["security"] == [
        {"oauth2": ["payments:write"]},
        {"oauth2": ["self:write"]},
    ]
    assert paths["/v1/parcel-callbacks"]["post"]["security"] == []
    # Neither scopes nor "public": left unsaid, for the documents' test to catch.
    assert "security" not in paths["/v1/forgotten"]["get"]


def test_a_read_lists_the_token_problems_its_own_and_a_404_for_its_path(paths):
    assert codes_by_status(paths["/v1/parcels/{parcel_id}"]["get"]) == {
        "401": {"unauthenticated", "invalid_token", "token_expired"},
        "403": {"insufficient_scope"},
        "404": {"resource_not_found"},
        "409": {"parcel_lost_in_test"},
        "500": {"internal_error"},
        "503": {"database_unavailable"},
    }


def test_a_creation_lists_the_body_and_idempotency_problems(paths):
    operation = paths["/v1/parcels"]["post"]
    found = codes_by_status(operation)
    assert found["400"] == {"malformed_json", "idempotency_key_missing"}
    assert found["409"] == {"idempotency_key_reuse", "idempotency_key_in_progress"}
    assert found["413"] == {"request_too_large"} and found["415"] == {"unsupported_media_type"}
    assert found["422"] == {"validation_error"}
    assert "404" not in found and "default" not in operation["responses"]
    (header,) = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
    assert header["in"] == "header" and header["required"] is True


def test_an_optional_key_is_documented_as_optional(paths):
    operation = paths["/v1/parcels/{parcel_id}"]["delete"]
    (header,) = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
    assert header["required"] is False
    found = codes_by_status(operation)
    assert "idempotency_key_missing" not in found.get("400", set())
    assert found["409"] == {"conflict", "idempotency_key_reuse", "idempotency_key_in_progress"}


def test_each_problem_answer_explains_its_codes_with_an_example_each(paths):
    response = paths["/v1/parcels/{parcel_id}"]["get"]["responses"]["409"]
    assert "`parcel_lost_in_test`: The parcel was lost." in response["description"]
    example = response["content"][PROBLEM_CONTENT_TYPE]["examples"]["parcel_lost_in_test"]
    assert example["summary"] == "Send another."
    assert example["value"]["code"] == "parcel_lost_in_test" and example["value"]["status"] == 409
    assert response["content"][PROBLEM_CONTENT_TYPE]["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_bodies_get_examples_from_their_schemas(paths):
    operation = paths["/v1/parcels"]["post"]
    sent = operation["requestBody"]["content"]["application/json"]["example"]
    assert sent["artisan_id"].startswith("art_")
    assert 1 <= sent["weight_grams"] <= 30_000
    answered = operation["responses"]["201"]["content"]["application/json"]["example"]
    # The object's own id has its kind's prefix; a field's example is kept as it is.
    assert answered["id"].startswith("re_") and answered["status"] == "shipped"
    assert answered["currency"] == "MAD" and answered["amount"] == 25_000
