# The API image: the service only (no torch); judge workers and the trainer get their own.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY service service
COPY workers workers
COPY trainer trainer
COPY migrations migrations
RUN pip install --no-cache-dir .
ENV ARBITER_HOST=0.0.0.0 ARBITER_PORT=8000
EXPOSE 8000
CMD ["arbiter", "serve"]
