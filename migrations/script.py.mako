"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

"""
from alembic import op
import sqlalchemy as sa
${imports if imports else ""}

# revision identifiers, used by Alembic.
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}
% if config.attributes.get("post_deploy"):

# A contract step: pod start-up leaves it for the post-deploy job, run after the
# rollout, when no pod of the previous image uses what it removes.
post_deploy = True
% endif
<% markers = config.attributes.get("revision_markers", {}).get(up_revision) %>
% if markers:
${markers}
% endif


def upgrade():
    ${upgrades if upgrades else "pass"}


def downgrade():
    ${downgrades if downgrades else "pass"}
