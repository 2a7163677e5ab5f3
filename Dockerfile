# addressclip REST service: `addressclip serve` on a bundle from `addressclip export`.
#
#   docker build -t addressclip .
#   docker run --rm -p 8000:8000 -v "$PWD/bundle:/bundle:ro" addressclip
#
# CPU-only torch (the slim image has no CUDA), a non-root user, and no network at run time: the bundle
# carries the weights and the AddressBook, and the hub libraries are told to stay offline. `docker stop`
# sends SIGTERM: the service drains (requests in flight finish) and exits 0. Limits: see the README's
# "Limits and failure behaviour"; pass other `serve` options after the image name.
# Packages that are not on PyPI (the build here used a local index) can be supplied as wheels in
# ./wheels/ of the build context, which pip searches first.

ARG PYTHON=3.11

FROM python:${PYTHON}-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# wheel[s]: the contents of ./wheels/ when there is one (a pattern may match nothing, a name may not)
COPY constraints.txt pyproject.toml README.md wheel[s] ./
COPY src ./src
# CPU wheels of the pinned torch stack first, then the package with every other pin from constraints.txt
RUN pip install --index-url https://download.pytorch.org/whl/cpu \
        "torch==$(grep -i '^torch==' constraints.txt | cut -d= -f3)" \
        "torchvision==$(grep -i '^torchvision==' constraints.txt | cut -d= -f3)" \
 && pip install --find-links . -c constraints.txt . \
 && python -m compileall -q /opt/venv

FROM python:${PYTHON}-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    MALLOC_ARENA_MAX=2
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin addressclip
COPY --from=build /opt/venv /opt/venv
USER addressclip
WORKDIR /home/addressclip
EXPOSE 8000
# liveness: /healthz answers while the process serves (no curl in the slim image: Python's urllib)
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as u; sys.exit(u.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["addressclip", "serve", "--bundle", "/bundle", "--host", "0.0.0.0", "--port", "8000", "--threads", "1"]
