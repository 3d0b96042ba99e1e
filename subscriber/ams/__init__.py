"""The Application Mobility Service (ETSI GS MEC 021): what the relocation workflow and the
edge applications use to move a user's context along with the application. See
docs/relocation.md, "Stateful relocation"."""
