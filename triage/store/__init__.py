"""The decision record: every scored report's decision, reviewers' corrections, shadow answers,
and (only when a review queue asks for it) the encrypted text of reports that need review.

SQLAlchemy Core over SQLite (embedded default) or PostgreSQL, with Alembic migrations. This
package imports the model core only; the gRPC layer, archive scoring and the CLI write to it.
"""

import logging

# Alembic logs its plugin set-up (when imported) and every step at INFO; what the record migrated
# is said by the record itself. Set here, before any module of this package imports alembic.
logging.getLogger("alembic").setLevel(logging.WARNING)
