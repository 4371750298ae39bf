"""TLS credentials for E2 gRPC links, read from the PEM files the descriptor (client) or the
`xapp e2sim` flags (server) name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from xapp.vocab import TlsFiles



class TlsConfigError(Exception):
    """A certificate or key file cannot be read."""


@dataclass(frozen=True, slots=True)
class ServerTls:
    """A node's side: its certificate and key, and the CA its clients' certificates must chain to
    (None: clients are not asked for a certificate)."""

    cert: Path
    key: Path
    client_ca: Path | None = None


def read_pem(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"{what} {path}: cannot read: {exc.strerror or exc}") from exc


def channel_credentials(tls: TlsFiles) -> grpc.ChannelCredentials:
    """Verify the node against `tls.ca`; present `tls.cert` (mTLS) when given."""
    return grpc.ssl_channel_credentials(
        root_certificates=read_pem(tls.ca, "e2.tls.ca"),
        private_key=read_pem(tls.key, "e2.tls.key"),
        certificate_chain=read_pem(tls.cert, "e2.tls.cert"),
    )


def channel_options(tls: TlsFiles | None) -> list[tuple[str, str]]:
    return [("grpc.ssl_target_name_override", tls.server_name)] if tls is not None and tls.server_name else []


def server_credentials(tls: ServerTls) -> grpc.ServerCredentials:
    """Serve with `tls.cert`; with a client CA, refuse every client without a certificate it signed."""
    pair = (read_pem(tls.key, "--tls-key"), read_pem(tls.cert, "--tls-cert"))
    client_ca = read_pem(tls.client_ca, "--tls-client-ca")
    return grpc.ssl_server_credentials([pair], root_certificates=client_ca, require_client_auth=client_ca is not None)
