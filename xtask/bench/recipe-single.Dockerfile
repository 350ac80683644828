# The single-stage Dockerfile of the recipe this project replaces ("Multi-stage Docker Build for Python
# Application", see README), kept as a benchmark fixture for `cargo xtask bench image`.
# Changed only where this machine forces it:
#   - the base image is a build argument (no registry is reachable: the benchmark passes the local stand-in);
#   - Poetry is installed with pip into its own virtualenv: the recipe's get-poetry.py URL is unreachable,
#     and Poetry 1.1 cannot read today's lock files, so it is Poetry 2 with the export plugin;
#   - `make server` has no Makefile here: the benchmark runs the image with the app's gunicorn command.
ARG BASE_IMAGE=python:3.10.4-slim-buster
FROM ${BASE_IMAGE}

ARG POETRY_VERSION="2.5.1" \
    WORK_APP_DIR="/app" \
    APP_PORT=8080

ENV PIP_DISABLE_PIP_VERSION_CHECK=on \
    POETRY_NO_INTERACTION=1 \
    POETRY_HOME="/opt/poetry" \
    POETRY_VERSION=$POETRY_VERSION \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# for poetry command to work
ENV PATH="$POETRY_HOME/bin:$PATH"

RUN apt-get update \
    && apt-get install --no-install-recommends -y curl build-essential \
    && rm -rf /var/lib/apt/lists/*

# installing poetry
RUN python -m venv $POETRY_HOME \
    && $POETRY_HOME/bin/pip install "poetry==$POETRY_VERSION" "poetry-plugin-export==1.10.1"

WORKDIR $WORK_APP_DIR

COPY pyproject.toml poetry.lock ./

# installing python packages
RUN poetry export -f requirements.txt --without-hashes --output requirements.txt \
    && pip install --no-cache-dir -r requirements.txt

COPY . ./

EXPOSE $APP_PORT

CMD [ "make", "server" ]
