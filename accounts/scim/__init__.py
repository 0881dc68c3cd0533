"""SCIM 2.0 provisioning (RFC 7644 subset), a small implementation rather than django-scim2.

django-scim2 expects its model mixins on the user model and a group model with a plain many-to-many to
users, and writes rows through its adapters' `save()`: here users are deactivated and keys revoked through
the accounts services (audited, auth generation bumped), and provider groups act through SsoGroupMapping
on roles and team memberships, so the mixins and adapters would have to be replaced wholesale.
"""
