"""Independent rebuilds (issue 14, item 4): a project's registered rebuilders rebuild a release's
wheels from its sdist and report, signed with Sigstore, whether the bytes match the index's.

``predicate`` is the signed statement's format (shared by the index and the client),
``registry`` the rebuilders a project trusts, ``verify`` and ``store`` the index's checks and
records, ``routes`` the Integrity API's ``/rebuilds`` endpoint, ``build``, ``signing`` and
``client`` the rebuilder's side (``assay rebuild``)."""
