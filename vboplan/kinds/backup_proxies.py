"""``backup_proxies``: the server's backup proxies, adopted and edited by host name (description, port, throttling,
internet proxy). Proxies are added in the Veeam console, which installs software on the host; vboplan never adds
or removes one, so a template naming a proxy the server lacks is an error (Veeam's REST API, ``/Proxies``:
helpcenter.veeam.com/docs/vbo365/rest/reference/vbo365-rest.html)."""

from __future__ import annotations

from vboplan.kinds.spec import CollectionSpec, per_version

SPEC = CollectionSpec(
    key="backup_proxies", key_field="hostName",
    # v6/v7 answer a plain array, v8 a page; v6/v7 leave the throttling fields out unless extendedView is true.
    versions=per_version("Proxies", "Proxies/{proxyId}", "RESTProxyFromClient", "RESTProxy",
                         versions=("v6", "v7", "v8"), create=False, delete=False,
                         query={"v6": (("extendedView", "true"),), "v7": (("extendedView", "true"),)}),
    secrets=("sshSettings.privateKeyBase64",),
    whole_truth=False, seed="proxies",
    absent="backup proxies are added in the Veeam console (it installs the proxy software on the host); add it "
           "there, then plan again",
    summary="backup proxies, adopted and edited by host name")
