"""The unbound Flask-SQLAlchemy extension; `create_app` binds it. Nothing connects at import time."""

from flask_sqlalchemy import SQLAlchemy

from audit.db import Base

db = SQLAlchemy(model_class=Base)
