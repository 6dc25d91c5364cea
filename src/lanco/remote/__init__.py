"""lanco on other hosts through OpenSSH: no daemon, no protocol of its own, the remote command line as it is.

:mod:`lanco.remote.ssh` builds and runs the ssh command line (``lanco -H``); :mod:`lanco.remote.api` is the
Python API's ``Namespace(name, host=...)`` over the remote CLI's ``--json`` documents. Loaded only with a host.
"""
