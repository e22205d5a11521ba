"""Helpers for the /staff tests: staff users and a logged-in Flask test client."""

from __future__ import annotations

from flask.testing import FlaskClient

from portal.staff.users import add_user
from portal.store.database import Store
from tests.webhook_helpers import hidden_field

PASSWORD = "correct horse battery staple"


def add_staff(store: Store, email: str, role: str = "viewer") -> None:
    add_user(store, email, PASSWORD, role)


def login(client: FlaskClient, email: str, password: str = PASSWORD, **request_args):
    """Log in through the real form (nonce cookie + signed field); returns the POST's response."""
    form = client.get("/staff/login", **request_args)
    assert form.status_code == 200, form.status_code
    token = hidden_field(form.get_data(as_text=True), "csrf_token")
    return client.post("/staff/login", data={"email": email, "password": password, "csrf_token": token},
                       **request_args)


def csrf(client: FlaskClient, path: str = "/staff/") -> str:
    """The session's CSRF token, read from a page's logout form."""
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    return hidden_field(page.get_data(as_text=True), "csrf_token")
