#!/usr/bin/env bash
# Generate a reviewed migration from the changes in models.py.
# Run ./init_migration.sh --help for everything it does.
set -euo pipefail

cd "$(dirname "$0")"
# The project's virtualenv (made by `make run`) first, so `flask` and `python`
# are this project's even when the shell has not activated it.
if [[ -x .venv/bin/python ]]; then
    PATH="$PWD/.venv/bin:$PATH"
fi
export FLASK_APP="${FLASK_APP:-app.py}"
VERSIONS=migrations/versions

usage() {
    cat <<'HELP'
Usage:
  ./init_migration.sh "message"        generate a migration from the model changes
  ./init_migration.sh --post-deploy "message"
                                       generate a post-deploy (contract) revision
  ./init_migration.sh --rename TABLE.OLD:NEW "message"
                                       a renamed column: an expand and a contract revision
  ./init_migration.sh --no-rename "message"
                                       a dropped + added column is no rename
  ./init_migration.sh --reset [--yes]  delete migrations/ and initialise it again
  ./init_migration.sh --help           show this help

"message" describes the change in one line, e.g.
  ./init_migration.sh "Add sent_to_devices field to MarketAlarmLog"

Generating a migration:
  1. refuses when your database is not at the latest revision
     ("Target database is not up to date": run `flask db upgrade` first);
  2. runs `flask db migrate -m "message"` (autogenerate against DATABASE_URL,
     by default the SQLite file under instance/);
  3. prints the new file's path and the operations it contains, flags
     destructive ones, and lints its PostgreSQL SQL with squawk; with lint
     findings it exits 1 and keeps the file for you to fix;
  4. when the models did not change, says so and writes no file.
With two ordinary heads in migrations/versions (two branches each added a
revision), merge them first: flask db merge -m "Merge heads" REV1 REV2
(the head of the post-deploy chain is no such head and is never merged).
Review the file, then `flask db upgrade`, `flask db downgrade`, `flask db upgrade`
and commit it. Pods never generate migrations; they only apply committed ones.

--post-deploy writes a contract step: a change that breaks the previous image
(drop or rename a column or table, NOT NULL on an existing column, a narrower
type). Pods of the previous image keep serving during a rolling update, so pod
start-up never applies it; the post-deploy job (`flask db upgrade`, after
`kubectl rollout status`) does. The revision says `post_deploy = True`, goes on
the post-deploy chain and depends on the newest ordinary revision, so later
ordinary revisions never wait for it (see safe_migrations/post_deploy.py).

A column dropped and one of the same type added in one table may be a rename:
flask db migrate asks "Did you rename market.address to market.street_address?"
on a terminal; without one it writes nothing and prints the commands that
decide. --rename TABLE.OLD:NEW (repeatable) writes two revisions: an expand
revision (the new column, a trigger keeping both columns equal, the rows copied
in batches; pods apply it at start-up) and a post-deploy contract revision
(drops the trigger and the old column after the rollout). --no-rename writes
the add and the drop (the drop deletes the column's values and needs a review).

--reset deletes migrations/ with its whole history and initialises it again
(`flask db init`, keeping this project's env.py, alembic.ini and script
template). It asks you to type "reset" unless --yes is given. It never touches
any database: a database migrated with the old history keeps its tables and its
alembic_version row (recreate a local database, or see docs/ for a baseline).

Exit codes: 0 done, 1 failed, 2 bad arguments.
HELP
}

die_usage() { echo "init_migration.sh: $1 (see --help)" >&2; exit 2; }

reset_migrations() {
    local assume_yes=$1
    if [[ $assume_yes != yes ]]; then
        if [[ ! -t 0 ]]; then
            die_usage "--reset needs confirmation: add --yes, or run it in a terminal and type reset"
        fi
        echo "This deletes migrations/ and all $(find "$VERSIONS" -name '*.py' 2>/dev/null | wc -l | tr -d ' ') revision files in it. No database is touched."
        read -r -p 'Type "reset" to continue: ' answer
        [[ $answer == reset ]] || { echo "init_migration.sh: not confirmed; nothing changed" >&2; exit 1; }
    fi
    keep=$(mktemp -d)
    trap 'rm -rf "$keep"' EXIT
    for f in env.py alembic.ini script.py.mako README; do
        [[ -f migrations/$f ]] && cp "migrations/$f" "$keep/$f"
    done
    rm -rf migrations
    flask db init >/dev/null
    for f in env.py alembic.ini script.py.mako README; do
        [[ -f $keep/$f ]] && cp "$keep/$f" "migrations/$f"
    done
    echo "migrations/ re-initialised with no revisions. No database was touched."
    echo "Next: ./init_migration.sh \"Initial migration\""
}

generate() {
    local message=$1 kind=$2
    shift 2
    [[ -n ${message//[[:space:]]/} ]] || die_usage "the message is empty; describe the change, e.g. \"Add sent_to_devices field to MarketAlarmLog\""
    [[ $message != *$'\n'* && $message != *$'\r'* ]] || die_usage "the message must be one line"
    ((${#message} <= 200)) || die_usage "the message is ${#message} characters; keep it under 200"
    [[ -d $VERSIONS ]] || { echo "init_migration.sh: $VERSIONS is missing; run ./init_migration.sh --reset --yes to initialise it" >&2; exit 1; }

    local before after output new status=0
    before=$(find "$VERSIONS" -maxdepth 1 -name '*.py' | sort)
    local extra=("$@")
    [[ $kind == post-deploy ]] && extra=(-x post_deploy=1)
    # stdin stays the terminal (if any): flask db migrate may ask "Did you rename ...?"
    output=$(flask db migrate -m "$message" "${extra[@]}" 2>&1) || status=$?
    after=$(find "$VERSIONS" -maxdepth 1 -name '*.py' | sort)
    new=$(comm -13 <(echo "$before") <(echo "$after"))

    if ((status != 0)); then
        local heads
        # Ordinary heads only: a post-deploy chain's head is no branch to merge.
        heads=$(flask db heads 2>/dev/null | grep -v "(post_deploy)" | grep -c . || true)
        if ((heads > 1)) || grep -q "several heads\|Multiple heads" <<<"$output"; then
            echo "init_migration.sh: migrations/versions has $heads ordinary heads (two branches each added a revision): merge them first with \`flask db merge heads -m \"Merge heads\"\` (with a post-deploy chain, name the ordinary heads: flask db merge -m \"Merge heads\" REV1 REV2), review and commit the merge revision, then run this again" >&2
        elif grep -q "No migration file was written. Decide with one of:" <<<"$output"; then
            sed -n '/^flask db migrate: /,$p' <<<"$output" >&2
            echo "init_migration.sh: decide, then run it again: ./init_migration.sh --rename TABLE.OLD:NEW \"$message\" (or --no-rename)" >&2
        elif grep -q "Target database is not up to date" <<<"$output"; then
            echo "init_migration.sh: Target database is not up to date: apply the existing migrations first with \`flask db upgrade\`, then run this again" >&2
        else
            echo "$output" | grep -E "Error|error" | tail -n 5 >&2 || true
            echo "init_migration.sh: flask db migrate failed (exit $status); nothing generated" >&2
        fi
        [[ -n $new ]] && xargs rm -f <<<"$new"
        exit 1
    fi
    if [[ -z $new ]]; then
        echo "No changes in the models: no migration generated."
        exit 0
    fi
    local file revision failed=0
    while read -r file; do
        echo "Generated $file"
        if grep -q "^post_deploy = True" "$file"; then
            echo "It is a post-deploy revision (post_deploy = True): pods leave it for the post-deploy job."
        fi
        echo "Operations in upgrade():"
        python -m safe_migrations.summary "$file"
        echo
        revision=$(basename "$file" | cut -d_ -f3)
        echo "Lint of its PostgreSQL SQL (squawk):"
        local lint_status=0 lint_output
        lint_output=$(flask db lint "$revision" 2>&1) || lint_status=$?
        sed 's/^/  /' <<<"$lint_output"
        if ((lint_status == 3)); then
            echo "init_migration.sh: $file was generated but not linted: squawk cannot run on this machine (see above); install the pinned requirements (make run does), then run flask db lint $revision" >&2
            failed=1
        elif ((lint_status != 0)); then
            echo "init_migration.sh: lint found problems in $file (kept for review): fix each finding above (it names the rule and the safe alternative), then run flask db lint $revision until it says no findings" >&2
            failed=1
        fi
    done <<<"$new"
    ((failed == 0)) || exit 1
    echo
    echo "Review it now: autogenerate misses some type changes and data conversions."
    echo "Then: flask db upgrade && flask db downgrade && flask db upgrade"
}

case "${1-}" in
    -h | --help)
        (($# == 1)) || die_usage "--help takes no other arguments"
        usage
        ;;
    --post-deploy)
        (($# == 2)) || die_usage "--post-deploy takes one quoted message: ./init_migration.sh --post-deploy \"Drop market.address\""
        generate "$2" post-deploy
        ;;
    --reset)
        shift
        case "$#:${1-}" in
            0:) reset_migrations no ;;
            1:--yes | 1:-y) reset_migrations yes ;;
            *) die_usage "--reset accepts only --yes" ;;
        esac
        ;;
    "")
        (($# == 1)) && die_usage "the message is empty; describe the change, e.g. \"Add sent_to_devices field to MarketAlarmLog\""
        die_usage "missing message: ./init_migration.sh \"Describe the change\""
        ;;
    --rename | --no-rename)
        renames=()
        while (($# > 1)); do
            case $1 in
                --rename)
                    [[ -n ${2-} && $2 != -* ]] || die_usage "--rename takes TABLE.OLD:NEW, e.g. --rename market.address:street_address"
                    renames+=(--rename "$2")
                    shift 2
                    ;;
                --no-rename) renames+=(--no-rename); shift ;;
                *) break ;;
            esac
        done
        (($# == 1)) || die_usage "expected one quoted message after --rename/--no-rename: ./init_migration.sh --rename market.address:street_address \"Rename market.address\""
        [[ $1 != -* ]] || die_usage "unknown option: $1"
        generate "$1" ordinary "${renames[@]}"
        ;;
    -*)
        die_usage "unknown option: $1"
        ;;
    *)
        (($# == 1)) || die_usage "expected one quoted message, got $# arguments (put the message in quotes)"
        generate "$1" ordinary
        ;;
esac
