"""3GPP service-based-interface contracts, one module per specification.

* :mod:`subscriber.sbi.common`: TS 29.571 common data types (PLMN, TAI, cells, UserLocation,
  ProblemDetails) and the shared JSON parsing that turns validation errors into
  :class:`~subscriber.errors.InvalidCallback`.
* :mod:`subscriber.sbi.amf`: TS 29.518 Namf_EventExposure and Namf_Location.
* :mod:`subscriber.sbi.smf`: TS 29.508 Nsmf_EventExposure.
* :mod:`subscriber.sbi.nef`: TS 29.122 MonitoringEvent.

The models are pure pydantic: they accept what real cores send (unknown fields are ignored,
unknown enumeration values are kept as strings, hex identifiers are lower-cased) and reject what is
malformed (bad TAC or cell id lengths, missing mandatory keys).
"""
