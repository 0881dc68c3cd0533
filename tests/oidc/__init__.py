"""A real OpenID provider (npm `oidc-provider`, tests/oidc/provider.mjs) on loopback, for the SSO tests."""
import json
import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE = shutil.which("node") or "node"


class OidcProvider:
    def __init__(self, port: int, accounts_file: Path, portal_url: str):
        self.port = port
        self.issuer = f"http://127.0.0.1:{port}"
        self.accounts_file = accounts_file
        self.accounts: dict[str, dict] = {}
        self.save()
        self.proc = subprocess.Popen([NODE, str(HERE / "provider.mjs"), str(port), str(accounts_file), portal_url],
                                     cwd=HERE.parent.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("ready"):
            self.proc.kill()
            raise RuntimeError(f"oidc-provider did not start: {line}{self.proc.stderr.read().decode()[-2000:]}")

    def account(self, login: str, *, password: str = "pw-at-the-provider", groups: list[str] | None = None) -> None:
        """Create or change an account at the provider; it is read again at the next sign-in."""
        self.accounts[login] = {"password": password, "email": f"{login}@example.test", "groups": groups or []}
        self.save()

    def save(self) -> None:
        tmp = self.accounts_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.accounts))
        os.replace(tmp, self.accounts_file)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(10)
