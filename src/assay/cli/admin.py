"""``assay admin``: manage users, tokens, projects and releases directly in the index's storage."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import sqlalchemy as sa

from assay.accounts.tokens import parse_duration
from assay.admin import accounts, projects
from assay.cli.common import (
    CommandError,
    FriendlyGroup,
    admin_actor,
    friendly_errors,
    open_database,
    settings_from,
    storage_options,
)
from assay.config import Settings
from assay.indexes import IndexRef
from assay.indexes.registry import load_all
from assay.storage.blobs import BlobStore
from assay.storage.db import Database
from assay.storage.models import DEFAULT_INDEX_NAME, AuditEvent
from assay.storage.modes import make_private_dirs
from assay.storage.stores import blob_store


class Ctx:
    """The index an admin command works on.

    Issue 10, item 18: the data directory is resolved as ``assay serve`` resolves it (flag,
    ``ASSAY_DATA_DIR``, config file, default ``./assay-data``), and only ``assay admin init``
    may create one: any other command refuses a data directory (or SQLite database) that does
    not exist, instead of silently creating an empty index wherever it was run. Every command
    that changes something says on stderr which data directory it used, and why that one.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        #: ``--index NAME`` (issue 11, part 3): the index an index-scoped command works on.
        self.index_name = DEFAULT_INDEX_NAME
        self._index: IndexRef | None = None
        self._db: Database | None = None
        self._checked = False
        self._created = False
        self._announced = False

    @property
    def where(self) -> str:
        """``/abs/path (from --data-dir)``."""
        return f"{self.settings.data_dir.resolve()} (from {self.settings.source_of('data_dir')})"

    def _check_exists(self) -> None:
        if self._checked:
            return
        data_dir = self.settings.data_dir
        hint = 'create one with "assay admin init" (or "assay serve"), or name an existing one'
        if not data_dir.is_dir():
            raise CommandError(f"no data directory at {self.where}: {hint}")
        if not self.settings.database_url and not (data_dir / "assay.db").is_file():
            raise CommandError(f"no database in data directory {self.where}: {hint}")
        self._checked = True

    def create(self) -> None:
        """``admin init``: make the data directory (0700) if it is missing."""
        make_private_dirs(self.settings.data_dir)
        self._checked = self._created = True

    def announce(self) -> None:
        self._check_exists()
        if not self._announced:
            click.echo(f"assay: using data directory {self.where}", err=True)
            self._announced = True

    @property
    def db(self) -> Database:
        if self._db is None:
            self._check_exists()
            if not self._created and self.settings.database_url:
                self._check_schema()
            self._db = open_database(self.settings)
            self._purge_on_change()
        return self._db

    def _purge_on_change(self) -> None:
        """Changes made by admin commands (removals, yanks, fsck's quarantine) purge the CDN as
        the server's do; what is queued is sent before the command exits."""
        from assay.index.cdn import purger_for
        from assay.storage.changes import on_project_changed

        db = self._db
        assert db is not None

        def index_name(index_id: int) -> str:
            return next((i.name for i in load_all(db) if i.id == index_id), str(index_id))

        purger = purger_for(self.settings, index_name)
        if purger is None:
            return
        unregister = on_project_changed(purger.on_change)
        click_ctx = click.get_current_context(silent=True)
        if click_ctx is not None:
            click_ctx.call_on_close(unregister)
            click_ctx.call_on_close(purger.close)

    def _check_schema(self) -> None:
        """A server database (PostgreSQL) without assay's tables is not an index either."""
        db = Database(self.settings.resolved_database_url)
        try:
            db.check()
            if db.recorded_revision() is None:
                raise CommandError(
                    f"database {db.safe_url} has no assay schema: create it with \"assay admin init\" "
                    "(or \"assay serve\"), or name the index's database"
                )
        finally:
            db.dispose()

    @property
    def index(self) -> IndexRef:
        """The ``--index`` named (the default index without one), which must exist."""
        if self._index is None:
            found = next((i for i in load_all(self.db) if i.name == self.index_name), None)
            if found is None:
                raise CommandError(f"no index named {self.index_name!r} (see `assay admin index list`)")
            self._index = found
        return self._index

    @property
    def blobs(self) -> BlobStore:
        self._check_exists()
        return blob_store(self.settings)

    @property
    def actor(self) -> str:
        """Who is changing the index; asking for it is what makes a command a changing one, so
        this is where it says which data directory it changes."""
        self.announce()
        return admin_actor()


pass_ctx = click.make_pass_decorator(Ctx)

_F = TypeVar("_F", bound=Callable[..., Any])


def _set_index(context: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        context.ensure_object(Ctx).index_name = value


def index_option(command: _F) -> _F:
    """``--index NAME`` on an index-scoped admin command: which index it works on (default:
    the default index, at the site root)."""
    return click.option(
        "--index",
        "index_name",
        metavar="NAME",
        expose_value=False,
        is_eager=True,
        callback=_set_index,
        help="The index to work on (default: the default index).",
    )(command)


@click.group(
    cls=FriendlyGroup,
    lazy={
        "issuer": "assay.cli.publishing_admin:issuer",
        "publisher": "assay.cli.publishing_admin:publisher",
        "provenance": "assay.cli.attestations_admin:provenance",
        "maintainer": "assay.cli.maintainer_admin:maintainer",
        "fsck": "assay.cli.fsck:fsck",
        "log": "assay.cli.log_admin:log",
        "index": "assay.cli.index_admin:index",
        "blobs": "assay.cli.blobs_admin:blobs",
        "rebuilder": "assay.cli.rebuilder_admin:rebuilder",

        "policy": "assay.cli.policy_admin:policy",
    },
)
@storage_options
@click.pass_context
def admin(
    ctx: click.Context,
    config_file: Path | None,
    data_dir: Path | None,
    database_url: str | None,
    blob_store: str | None,
    s3_endpoint_url: str | None,
) -> None:
    """Administer an index (works on its database and files directly; the server may be running)."""
    ctx.obj = Ctx(
        settings_from(
            config_file,
            data_dir=data_dir,
            database_url=database_url,
            blob_store=blob_store,
            s3_endpoint_url=s3_endpoint_url,
        )
    )


@admin.command()
@pass_ctx
@friendly_errors
def init(ctx: Ctx) -> None:
    """Create a data directory and its database (or bring an existing one's schema up to date).

    The only admin command that creates an index; the others refuse a missing one."""
    ctx.create()
    ctx.announce()
    revision = ctx.db.current_revision()
    click.echo(f"database {ctx.db.safe_url} is at revision {revision}")


@admin.command()
@pass_ctx
@friendly_errors
def migrate(ctx: Ctx) -> None:
    """Upgrade an existing index's database schema (assay admin init creates a new index)."""
    ctx.announce()
    revision = ctx.db.current_revision()
    click.echo(f"database {ctx.db.safe_url} is at revision {revision}")


# ---- users ----
@admin.group()
def user() -> None:
    """Users (the people who own and maintain projects)."""


@user.command("create")
@click.argument("username")
@pass_ctx
@friendly_errors
def user_create(ctx: Ctx, username: str) -> None:
    """Create a user."""
    accounts.create_user(ctx.db, username, actor=ctx.actor)
    click.echo(f"created user {username}")


@user.command("list")
@pass_ctx
@friendly_errors
def user_list(ctx: Ctx) -> None:
    for name, created in accounts.list_users(ctx.db):
        click.echo(f"{name}\t{created:%Y-%m-%d}")


@user.group("totp")
def user_totp() -> None:
    """TOTP (RFC 6238), the second factor that approving a staged release needs."""


@user_totp.command("enable")
@click.argument("username")
@pass_ctx
@friendly_errors
def user_totp_enable(ctx: Ctx, username: str) -> None:
    """Enrol USERNAME and print the otpauth:// URI for their authenticator app (shown once)."""
    uri = accounts.enable_totp(ctx.db, username, actor=ctx.actor)
    click.echo(uri)
    click.echo(f"TOTP enabled for {username}: give them this URI (or a QR code of it); it is not shown again", err=True)


@user_totp.command("disable")
@click.argument("username")
@pass_ctx
@friendly_errors
def user_totp_disable(ctx: Ctx, username: str) -> None:
    """Remove USERNAME's TOTP secret (they can approve nothing until enrolled again)."""
    accounts.disable_totp(ctx.db, username, actor=ctx.actor)
    click.echo(f"TOTP disabled for {username}")


# ---- tokens ----
@admin.group()
def token() -> None:
    """API tokens for uploads (HTTP Basic: username __token__, password the token)."""


@token.command("create")
@click.option("--user", "username", required=True, help="The user the token acts for.")
@click.option("--project", "projects_", multiple=True, help="Limit the token to this project (repeatable).")
@click.option("--expires", help="Lifetime, e.g. 30d, 12h (default: no expiry).")
@click.option("--description", default="", help="A note to recognise the token by.")
@index_option
@pass_ctx
@friendly_errors
def token_create(ctx: Ctx, username: str, projects_: tuple[str, ...], expires: str | None, description: str) -> None:
    """Create a token and print it (it is stored only as a hash and cannot be shown again)."""
    try:
        lifetime = parse_duration(expires) if expires else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--expires") from None
    issued = accounts.create_token(
        ctx.db,
        username=username,
        projects=list(projects_) or None,
        expires_in=lifetime,
        description=description,
        prefix=ctx.settings.token_prefix,
        actor=ctx.actor,
        index_id=ctx.index.id,
    )
    click.echo(issued.token)
    scope = ", ".join(sorted(projects_)) if projects_ else "all projects of " + username
    until = f"until {issued.expires:%Y-%m-%d %H:%M} UTC" if issued.expires else "with no expiry"
    click.echo(f"token {issued.id}: uploads to {scope}, {until}", err=True)


@token.command("revoke")
@click.argument("token_or_id")
@pass_ctx
@friendly_errors
def token_revoke(ctx: Ctx, token_or_id: str) -> None:
    """Revoke a token, given its id or the token itself."""
    token_id = accounts.revoke_token(ctx.db, token_or_id, prefix=ctx.settings.token_prefix, actor=ctx.actor)
    click.echo(f"revoked token {token_id}")


@token.command("list")
@click.option("--user", "username", help="Only this user's tokens.")
@index_option
@pass_ctx
@friendly_errors
def token_list(ctx: Ctx, username: str | None) -> None:
    for t in accounts.list_tokens(ctx.db, username, index_id=ctx.index.id):
        state = "revoked" if t.revoked else (f"expires {t.expires:%Y-%m-%d}" if t.expires else "active")
        scope = ",".join(t.projects) if t.projects else "*"
        click.echo(f"{t.id}\t{t.kind}\t{t.user or '-'}\t{scope}\t{state}\t{t.description}")


# ---- projects and roles ----
@admin.group()
def project() -> None:
    """Projects: create, roles, status, removal."""


@project.command("create")
@click.argument("name")
@click.option("--owner", required=True, help="The user who owns it.")
@index_option
@pass_ctx
@friendly_errors
def project_create(ctx: Ctx, name: str, owner: str) -> None:
    """Create an empty project (to scope tokens or publishers to it before its first upload)."""
    normalized = accounts.create_project(ctx.db, name, owner=owner, actor=ctx.actor, index_id=ctx.index.id)
    click.echo(f"created project {normalized} owned by {owner}")


@project.command("reserve")
@click.argument("name")
@index_option
@pass_ctx
@friendly_errors
def project_reserve(ctx: Ctx, name: str) -> None:
    """Keep NAME from coming from an upstream mirror, hosting nothing (an empty project without
    owners; give it one with `project role` to upload to it)."""
    normalized = accounts.reserve_project(ctx.db, name, actor=ctx.actor, index_id=ctx.index.id)
    click.echo(f"reserved {normalized}: no base of this index will serve it")


@project.command("role")
@click.argument("name")
@click.argument("username")
@click.argument("role", type=click.Choice([*accounts.ROLES, "none"]))
@index_option
@pass_ctx
@friendly_errors
def project_role(ctx: Ctx, name: str, username: str, role: str) -> None:
    """Make USERNAME an owner or maintainer of project NAME ("none" removes the role)."""
    if role == "none":
        accounts.remove_role(ctx.db, name, username, actor=ctx.actor, index_id=ctx.index.id)
        click.echo(f"removed {username}'s role on {name}")
    else:
        accounts.set_role(ctx.db, name, username, role, actor=ctx.actor, index_id=ctx.index.id)
        click.echo(f"{username} is now {role} of {name}")


@project.command("status")
@click.argument("name")
@click.argument("status", type=click.Choice(projects.STATUSES))
@click.option("--reason", help="Shown to clients (PEP 792 status reason).")
@index_option
@pass_ctx
@friendly_errors
def project_status(ctx: Ctx, name: str, status: str, reason: str | None) -> None:
    """Set a project's PEP 792 status (archived and quarantined refuse uploads)."""
    projects.set_status(ctx.db, name, status, reason, actor=ctx.actor, index_id=ctx.index.id)
    click.echo(f"{name} is now {status}")


@project.command("set")
@click.argument("name")
@click.option(
    "--releases",
    type=click.Choice(projects.RELEASE_MODES),
    help="direct: uploads go live at once; staged: they wait in a stage for an owner's approval "
    "(assay release approve, with TOTP).",
)
@click.option(
    "--four-eyes/--no-four-eyes",
    default=None,
    help="Whether the approver of a stage must be someone other than who triggered its uploads.",
)
@click.option(
    "--approvals",
    type=int,
    help=f"M of N: how many different owners must approve a stage (1 to {projects.MAX_APPROVALS}; default 1).",
)
@click.option(
    "--rebuilds",
    type=int,
    help="How many registered rebuilders (assay admin rebuilder add) must have reproduced every wheel of a "
    "stage before it may be approved (0 to 10; default 0).",
)
@index_option
@pass_ctx
@friendly_errors
def project_set(
    ctx: Ctx, name: str, releases: str | None, four_eyes: bool | None, approvals: int | None, rebuilds: int | None
) -> None:
    """Change how project NAME's releases go live."""
    if releases is None and four_eyes is None and approvals is None and rebuilds is None:
        raise click.UsageError("nothing to set: give --releases, --four-eyes/--no-four-eyes, --approvals or --rebuilds")
    if rebuilds is not None:
        from assay.rebuilds import registry

        count = registry.set_required(ctx.db, name, rebuilds, actor=ctx.actor, index_id=ctx.index.id)
        click.echo(f"{name}: rebuilds required {count}")
        if releases is None and four_eyes is None and approvals is None:
            return
    mode, eyes, required = projects.set_releases(
        ctx.db, name, mode=releases, four_eyes=four_eyes, approvals=approvals, actor=ctx.actor, index_id=ctx.index.id
    )
    click.echo(f"{name}: releases {mode}, four eyes {'on' if eyes else 'off'}, approvals required {required}")


@project.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@index_option
@pass_ctx
@friendly_errors
def project_remove(ctx: Ctx, name: str, yes: bool) -> None:
    """Remove a project with all its releases and files (filenames stay used)."""
    if not yes:
        click.confirm(f"Remove project {name} and all its files?", abort=True)
    removed = projects.remove_project(ctx.db, ctx.blobs, name, actor=ctx.actor, index_id=ctx.index.id)
    click.echo(f"removed project {name} ({len(removed)} files)")


# ---- releases and files ----
@admin.command()
@click.argument("name")
@click.argument("version")
@click.option("--reason", help="Why (shown by installers, PEP 592).")
@index_option
@pass_ctx
@friendly_errors
def yank(ctx: Ctx, name: str, version: str, reason: str | None) -> None:
    """Yank a release (PEP 592): installers skip it unless pinned to it exactly."""
    projects.yank(ctx.db, name, version, reason, actor=ctx.actor, index_id=ctx.index.id)
    click.echo(f"yanked {name} {version}")


@admin.command()
@click.argument("name")
@click.argument("version")
@index_option
@pass_ctx
@friendly_errors
def unyank(ctx: Ctx, name: str, version: str) -> None:
    """Undo a yank."""
    projects.unyank(ctx.db, name, version, actor=ctx.actor, index_id=ctx.index.id)
    click.echo(f"unyanked {name} {version}")


@admin.command("remove-file")
@click.argument("filename")
@index_option
@pass_ctx
@friendly_errors
def remove_file(ctx: Ctx, filename: str) -> None:
    """Remove one file (its filename can never be uploaded again, as on PyPI)."""
    projects.remove_file(ctx.db, ctx.blobs, filename, actor=ctx.actor, index_id=ctx.index.id)
    click.echo(f"removed {filename}")


@admin.command("remove-release")
@click.argument("name")
@click.argument("version")
@index_option
@pass_ctx
@friendly_errors
def remove_release(ctx: Ctx, name: str, version: str) -> None:
    """Remove a release and all its files."""
    removed = projects.remove_release(ctx.db, ctx.blobs, name, version, actor=ctx.actor, index_id=ctx.index.id)
    click.echo(f"removed {name} {version} ({len(removed)} files)")


# ---- audit ----
@admin.command()
@click.option("--project", "project_name", help="Only events about this project.")
@click.option("--limit", default=50, show_default=True, help="How many of the newest events.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_ctx
@friendly_errors
def audit(ctx: Ctx, project_name: str | None, limit: int, as_json: bool) -> None:
    """Show the audit log: who did what, when, with which token, from where."""
    with ctx.db.read() as session:
        query = sa.select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
        if project_name:
            from packaging.utils import canonicalize_name

            query = query.where(AuditEvent.project == canonicalize_name(project_name))
        events = list(session.execute(query).scalars())
    for e in reversed(events):
        if as_json:
            click.echo(json.dumps({
                "time": e.time.isoformat(), "actor": e.actor, "action": e.action, "project": e.project,
                "target": e.target, "token_id": e.token_id, "remote_addr": e.remote_addr, "details": e.details,
            }))
        else:
            click.echo(
                f"{e.time:%Y-%m-%d %H:%M:%S} {e.actor} {e.action} {e.project or '-'} {e.target or '-'} "
                f"token={e.token_id or '-'} from={e.remote_addr or '-'} {json.dumps(e.details) if e.details else ''}"
            )
