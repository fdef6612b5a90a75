"""Login answers one way: an unknown badge, a wrong password, a missing or wrong second factor, a disabled or a
locked account all get the same 401 "invalid credentials"; the audit keeps the real reason, and a wrong second
factor counts as a failure like a wrong password."""

from datetime import timedelta

from sqlalchemy import text

from services.access.models import utcnow
from tests.access.conftest import AGENCY_ORI, PASSWORD, Access
from tests.conftest import TokenFactory


async def test_every_refusal_answers_the_same_and_a_wrong_second_factor_counts(
    access: Access, make_token: TokenFactory
) -> None:
    officer = await access.person("officer")
    with_totp = await access.person("supervisor", totp=True)
    disabled = await access.person("officer")
    locked = await access.person("officer")
    async with access.app.state.sessionmaker() as session:
        await session.execute(text("UPDATE access.users SET disabled = true WHERE id = :i"), {"i": disabled.id})
        await session.execute(
            text("UPDATE access.users SET locked_until = :t WHERE id = :i"),
            {"i": locked.id, "t": utcnow() + timedelta(hours=1)},
        )
        await session.commit()
    answers = [
        await access.client.post(
            "/v1/token", data={"grant_type": "password", "username": "no-such-badge", "password": PASSWORD}
        ),  # fmt: skip
        await access.login(officer, password="not the password"),
        await access.login(with_totp, totp=""),  # right password, no second factor
        await access.login(with_totp, totp="000000" if with_totp.totp_now() != "000000" else "111111"),
        await access.login(disabled),  # right password
        await access.login(locked),  # right password
    ]
    assert {(r.status_code, r.json()["detail"]) for r in answers} == {(401, "invalid credentials")}
    assert len({tuple(sorted(r.headers.keys())) for r in answers}) == 1

    auditor = make_token(subject="auditor-one-way", roles=["auditor"], agency=AGENCY_ORI)
    entries = await access.audit(auditor, action="auth.login", actor=with_totp.id)
    assert [(e["outcome"], e["details"]["why"], e["details"]["attempt"]) for e in entries] == [
        ("failed", "totp missing", 1),
        ("failed", "wrong TOTP code", 2),
    ]
    for person, why in ((disabled, "account disabled"), (locked, "account locked")):
        entries = await access.audit(auditor, action="auth.login", actor=person.id)
        assert [e["details"]["why"] for e in entries] == [why]
