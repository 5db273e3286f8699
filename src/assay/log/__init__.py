"""The transparency log's formats (issue 13): RFC 6962 Merkle trees and the C2SP tlog specs.

One module per concept, none of them touching the database or the web layer:

- `merkle`: RFC 6962 / RFC 9162 hashes, tree heads, inclusion and consistency proofs.
- `tiles`: C2SP tlog-tiles coordinates, paths, tile contents and entry bundles.
- `note`: C2SP signed-note (Ed25519 keys, verifier/signer key strings, sign/open).
- `checkpoint`: C2SP tlog-checkpoint note bodies.
- `cosignature`: C2SP tlog-cosignature (cosignature/v1, Ed25519) witness signatures.
- `proof`: C2SP tlog-proof receipts (`.tlog-proof` files).
"""
