# Image for helm/early-exit-xapp: the xApp with its packaged encoder, trained heads and descriptors.
#   docker build -t early-exit-xapp:0.1.0 .
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 -t early-exit-xapp:0.1.0-cuda .
# Layout: /opt/ric is the root that descriptor paths resolve against (heads/..., xapp/assets/...);
# the chart mounts its ConfigMap at /opt/ric/config, and the O-RAN SC xapp-std chart mounts
# config-file.json there too. The side features' compiled kernels and the `encoder.runtime/precision:
# auto` choice are cached under /tmp (the chart's writable emptyDir): made once per pod, before it
# reports ready. ONNX Runtime is installed (xapp[onnx]) so that `auto` can choose it.
FROM python:3.11-slim

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CONFIG_FILE=/opt/ric/descriptors/default.yaml \
    XAPP_HOME=/opt/ric \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    XAPP_CACHE_DIR=/tmp/xapp-cache

RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0

WORKDIR /opt/ric
COPY pyproject.toml setup.cfg README.md constraints.txt ./
COPY protos/ protos/
COPY xapp/ xapp/
RUN pip install -c constraints.txt '.[onnx]' && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin xapp
COPY heads/ heads/
COPY descriptors/ descriptors/

USER 10001
EXPOSE 8080 5560
ENTRYPOINT ["xapp"]
CMD ["run"]
