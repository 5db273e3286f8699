"""The consumer client: check every locked file against reviewed publisher pins (PEP 740).

``assay verify`` reads what is to be installed (a PEP 751 lock, hash-pinned requirements,
``pip lock`` output or explicit files), finds each file's provenance on its index, verifies
every attestation offline under one Sigstore trust root against the file's sha256 *as locked*,
and judges the signer against the package's pin. ``assay install`` then installs exactly the
verified files.

Modules, in the order a run uses them:

``locks``, ``requirements``  inputs -> ``files.LockedFile``
``indexes``                  which index to ask; URLs on it
``fetch``                    bounded HTTP (deadline, size cap, redirects, retries)
``cache``                    provenance and pages on disk, revalidated
``simple``, ``retrieve``     PEP 691 pages -> provenance (or why there is none)
``provenance``, ``workers``  the cryptographic and identity checks, in worker processes
``pins``                     .provenance.toml, .provenance.txt, lock identities
``verdicts``                 the verdict contract
``runner``                   one run, end to end
``report``                   JSON, table, progress
``changes``                  ``assay pins diff`` / ``update``
``install``                  ``assay install``
"""
