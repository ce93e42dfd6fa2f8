"""verified email addresses, server-side sessions, dealer invitations by link

* `users.verified_at`: an address is trusted once its owner followed a link
  mailed to it. Only verified addresses are unique (a partial unique index), so
  a sign-up with somebody else's address reserves nothing.
* `user_sessions`: a row per signed-in browser (only the SHA-256 of the
  cookie's id), so that signing out, a password change and removal end sessions.
* `dealer_invitations`: accepted only through the link mailed to the address.
* `dealer_applications.applicant_user_id`: who asked, for the manufacturer to see.

Existing users are verified if they could only have got a password through a
link mailed to them (`broker user add`, a colleague, a reset) or through a
manufacturer's invitation link; a retailer's first user from the old `/signup`,
which mailed nothing, is not: they confirm their address at their next sign-in.
Pending invitations made by matching an address to an account (never mailed as
a link) are withdrawn; manufacturers invite again.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 05:20:00
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa
import broker.db


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('dealer_invitations',
    sa.Column('id', BigId, nullable=False),
    sa.Column('manufacturer_id', BigId, nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', broker.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', broker.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decided_at', broker.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('retailer_id', BigId, nullable=True),
    sa.ForeignKeyConstraint(['manufacturer_id'], ['manufacturers.id'], name=op.f('fk_dealer_invitations_manufacturer_id_manufacturers')),
    sa.ForeignKeyConstraint(['retailer_id'], ['retailers.id'], name=op.f('fk_dealer_invitations_retailer_id_retailers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dealer_invitations')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_dealer_invitations_token_hash'))
    )
    with op.batch_alter_table('dealer_invitations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dealer_invitations_manufacturer_id'), ['manufacturer_id'], unique=False)

    op.create_table('user_sessions',
    sa.Column('id', BigId, nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', BigId, nullable=False),
    sa.Column('created_at', broker.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', broker.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', broker.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_sessions_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_user_sessions_token_hash'))
    )
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_sessions_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('dealer_applications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('applicant_user_id', BigId, nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_dealer_applications_applicant_user_id_users'), 'users', ['applicant_user_id'], ['id'])

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verified_at', broker.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.drop_constraint(batch_op.f('uq_users_email'), type_='unique')
        batch_op.create_index(batch_op.f('ix_users_email'), ['email'], unique=False)
        batch_op.create_index('uq_users_email_verified', ['email'], unique=True, sqlite_where=sa.text('verified_at IS NOT NULL'), postgresql_where=sa.text('verified_at IS NOT NULL'))

    users = sa.table('users', sa.column('id'), sa.column('role'), sa.column('retailer_id'),
                     sa.column('password_hash'), sa.column('created_at'), sa.column('verified_at'))
    retailers = sa.table('retailers', sa.column('id'), sa.column('created_at'))
    applications = sa.table('dealer_applications', sa.column('retailer_id'), sa.column('invited', sa.Boolean),
                            sa.column('status'), sa.column('decided_at'))
    # The old /signup wrote a retailer and its first user in one transaction, at
    # one moment, and mailed nothing; an invitation's sign-up did the same but
    # came through a link mailed to the address (its approved application was
    # decided at that moment too).
    self_signed_up = sa.and_(
        users.c.role == 'retailer',
        sa.exists().where(retailers.c.id == users.c.retailer_id, retailers.c.created_at == users.c.created_at),
        ~sa.exists().where(applications.c.retailer_id == users.c.retailer_id, applications.c.invited.is_(True),
                           applications.c.decided_at == users.c.created_at),
    )
    op.execute(users.update().where(users.c.password_hash.is_not(None), ~self_signed_up)
               .values(verified_at=users.c.created_at))
    # Invitations found by matching an address to an account: never proved by a link.
    op.execute(applications.delete().where(applications.c.invited.is_(True), applications.c.status == 'pending'))


def downgrade() -> None:
    users = sa.table('users', sa.column('id', BigId), sa.column('email'), sa.column('verified_at'))
    older = users.alias('older')
    # The old schema had one account per address: unverified duplicates give theirs up.
    op.execute(users.update().where(
        users.c.verified_at.is_(None),
        sa.exists().where(older.c.email == users.c.email, older.c.id != users.c.id,
                          sa.or_(older.c.verified_at.is_not(None), older.c.id < users.c.id)),
    ).values(email=sa.literal('pending-') + sa.cast(users.c.id, sa.String) + sa.literal('@users.invalid')))
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index('uq_users_email_verified', sqlite_where=sa.text('verified_at IS NOT NULL'), postgresql_where=sa.text('verified_at IS NOT NULL'))
        batch_op.drop_index(batch_op.f('ix_users_email'))
        batch_op.create_unique_constraint(batch_op.f('uq_users_email'), ['email'])
        batch_op.drop_column('verified_at')

    with op.batch_alter_table('dealer_applications', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_dealer_applications_applicant_user_id_users'), type_='foreignkey')
        batch_op.drop_column('applicant_user_id')

    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_sessions_user_id'))

    op.drop_table('user_sessions')
    with op.batch_alter_table('dealer_invitations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dealer_invitations_manufacturer_id'))

    op.drop_table('dealer_invitations')
