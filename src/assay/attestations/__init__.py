"""PEP 740 attestations: verified at upload against the publisher, stored as provenance, served
through the Integrity API and the simple pages.

Nothing is imported here: the verify client uses ``trust``, ``verify`` and ``provenance``
without a server. The application (``assay.app``) gives the upload path
``deferred.DeferredAttestationService`` (an ``assay.upload.interfaces.AttestationService``) and
mounts ``routes.routes``."""
