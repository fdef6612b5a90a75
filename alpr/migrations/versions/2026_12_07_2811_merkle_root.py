"""audit.merkle_root(ids): the SHA-256 Merkle root of a set of ids, for the entry each group commit of reads (and each
agents' import round) writes in the same statement as the reads (13.824 subd. 7(b): data entered). The same tree as
`shared/merkle.py`, which gives and checks a read's inclusion proof.

Revision ID: 2811
Revises: 2701
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "2811"
down_revision: str | None = "2701"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Leaves: sha256(0x00 || id text), sorted by id text; a node: sha256(0x01 || left || right); an odd last node
    # goes up as it is (RFC 6962's domain separation, so a leaf cannot pass for a node).
    op.execute(
        r"""
        CREATE FUNCTION audit.merkle_root(ids text[]) RETURNS text
        LANGUAGE plpgsql IMMUTABLE AS $$
        DECLARE lvl bytea[]; nxt bytea[]; n int; i int;
        BEGIN
          SELECT array_agg(sha256('\x00'::bytea || convert_to(x, 'UTF8')) ORDER BY x COLLATE "C")
            INTO lvl FROM unnest(ids) AS x;
          IF lvl IS NULL THEN RETURN NULL; END IF;
          n := array_length(lvl, 1);
          WHILE n > 1 LOOP
            nxt := ARRAY[]::bytea[];
            i := 1;
            WHILE i <= n LOOP
              IF i < n THEN
                nxt := array_append(nxt, sha256('\x01'::bytea || lvl[i] || lvl[i + 1]));
              ELSE
                nxt := array_append(nxt, lvl[i]);
              END IF;
              i := i + 2;
            END LOOP;
            lvl := nxt;
            n := array_length(lvl, 1);
          END LOOP;
          RETURN encode(lvl[1], 'hex');
        END $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION audit.merkle_root(text[])")
