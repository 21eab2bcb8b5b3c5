"""The GDPR's vocabulary as data: the fideslang taxonomy with Art. 9/10 categories,
the Commission's adequacy decisions, and the field names that suggest personal data.

Below :mod:`interlock.config`, which checks manifests against it; the register
and drift (:mod:`interlock.privacy`) sit above both.
"""
