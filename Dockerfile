# One image for web, worker and beat (docker-compose.yml picks the command).
FROM python:3.12.1-slim-bookworm

# Production settings for every command in the image (manage.py alone would
# pick the debug settings meant for a checkout).
ENV DJANGO_SETTINGS_MODULE=tracksop.settings.base \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    PATH=/opt/venv/bin:$PATH

RUN pip install --no-cache-dir uv==0.13.8 \
    && useradd --create-home --uid 1000 tracksop

WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --extra carriers --no-install-project
COPY . .
# Static files are collected at build time and served by WhiteNoise.
RUN DJANGO_SECRET_KEY=build-only-not-secret-build-only-not-secret-build-only \
    DJANGO_ALLOWED_HOSTS=build DJANGO_STATIC_ROOT=/app/staticfiles \
    python manage.py collectstatic --no-input -v 0 \
    && mkdir -p /app/var && chown -R tracksop /app/var

USER tracksop
ENV DJANGO_STATIC_ROOT=/app/staticfiles
EXPOSE 8000
CMD ["gunicorn", "tracksop.wsgi:application", "--config", "gunicorn.conf.py", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
