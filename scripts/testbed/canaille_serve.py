"""Canaille (PyPI), an open-source identity server, serving its SCIM 2.0 API on loopback.

    canaille_serve.py PORT TOKEN [OIDC_SPEC_JSON]

idsync's second SCIM server in the tests: written independently of scim2-server. This file
only starts it: an in-memory backend, one OAuth client, and TOKEN as that client's bearer token
(Canaille's SCIM API takes OAuth tokens; a client's token may manage users and groups).

With OIDC_SPEC_JSON, Canaille is also the OpenID Connect provider the console logs in at:
the file names the console's client (`client_id`, `client_secret`, `redirect_uri`) and the
provider's people (`users`: `user_name`, `password`, `groups`).
"""
import datetime
import json
import logging
import os
import sys
import uuid

os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

from canaille import create_app  # noqa: E402
from canaille.app import models  # noqa: E402
from canaille.backends import Backend  # noqa: E402
from joserfc.jwk import JWKRegistry  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402


def main() -> None:
    port, token = int(sys.argv[1]), sys.argv[2]
    jwk = JWKRegistry.generate_key("RSA", 2048)
    jwk.ensure_kid()
    config = {
        "SECRET_KEY": str(uuid.uuid4()),
        "WTF_CSRF_ENABLED": False,
        "PREFERRED_URL_SCHEME": "http",
        "SERVER_NAME": f"127.0.0.1:{port}",
        "CANAILLE": {
            "DATABASE": "memory",
            "JAVASCRIPT": False,
            "LOGGING": {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {"stderr": {"class": "logging.StreamHandler"}},
                "loggers": {"canaille": {"level": "ERROR", "handlers": ["stderr"]}},
            },
        },
        "CANAILLE_OIDC": {"ACTIVE_JWKS": [jwk.as_dict(private=True)]},
        "CANAILLE_SCIM": {"ENABLE_SERVER": True},
    }
    app = create_app(config=config)
    with app.app_context():
        now = datetime.datetime.now(datetime.timezone.utc)
        client = models.Client(
            client_id="idsync",
            client_name="idsync",
            client_id_issued_at=now,
            grant_types=["client_credentials"],
            response_types=["token"],
            scope=["openid"],
            redirect_uris=[],
            token_endpoint_auth_method="client_secret_basic",
            client_secret=uuid.uuid4().hex,
        )
        Backend.instance.save(client)
        Backend.instance.save(
            models.Token(
                token_id=str(uuid.uuid4()),
                access_token=token,
                client=client,
                subject=None,
                type="access_token",
                scope=["openid"],
                issue_date=now,
                lifetime=10 * 365 * 24 * 3600,
                audience=[client],
            )
        )
        if len(sys.argv) > 3:
            with open(sys.argv[3]) as f:
                add_oidc(json.load(f), now)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    make_server("127.0.0.1", port, app, threaded=True).serve_forever()


def add_oidc(spec: dict, now: datetime.datetime) -> None:
    """The console's OIDC client (on 127.0.0.1, a domain Canaille trusts: no consent page)
    and the provider's people."""
    client = models.Client(
        client_id=spec["client_id"],
        client_name="idsync console",
        client_id_issued_at=now,
        grant_types=["authorization_code"],
        response_types=["code"],
        scope=["openid", "profile", "email", "groups"],
        redirect_uris=[spec["redirect_uri"]],
        token_endpoint_auth_method="client_secret_basic",
        client_secret=spec["client_secret"],
        client_uri=spec["redirect_uri"].rsplit("/oidc/", 1)[0],
    )
    Backend.instance.save(client)
    # The ID token's `aud` is the client's audience (Canaille's own registration endpoint
    # sets it to the client itself, as here).
    client.audience = [client]
    Backend.instance.save(client)
    groups: dict[str, list] = {}
    for u in spec["users"]:
        user = models.User(
            user_name=u["user_name"],
            family_name=u["user_name"],
            formatted_name=u["user_name"],
            # Canaille's `preferred_username` claim is the display name.
            display_name=u["user_name"],
            emails=[f"{u['user_name']}@idp.example.org"],
            password=u["password"],
        )
        Backend.instance.save(user)
        for g in u.get("groups", []):
            groups.setdefault(g, []).append(user)
    for name, members in groups.items():
        Backend.instance.save(models.Group(display_name=name, members=members))


if __name__ == "__main__":
    main()
