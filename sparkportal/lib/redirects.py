"""Where a form may send the browser next: only somewhere on this site."""
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme


def redirect_next(request: HttpRequest, fallback: str, *args: object, **kwargs: object) -> HttpResponseRedirect:
    """Redirect to the form's `next` when it stays on this site, else to `fallback` (a URL name and its
    arguments, as for `redirect`). An off-site `next` (`https://evil.example`, `//evil.example`,
    `/\\evil.example`, which browsers read as `//`) would turn the portal into a phishing relay."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return redirect(target)
    return redirect(fallback, *args, **kwargs)
