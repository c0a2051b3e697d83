"""Pages compressed on the way out: a security page of the demo is 105 KB of HTML, 10 KB gzipped.

Django's GZipMiddleware, for HTML only. The API's JSON answers are small and the callbacks are the portal's hot
path; raw report downloads are streamed as stored (hundreds of megabytes would cost a worker's CPU); static files
are compressed once, at collectstatic, by whitenoise.

BREACH (guessing a secret in a compressed page by reflecting chosen text beside it, many times over) finds no
stable secret in these pages: Django masks the CSRF token anew in every response, the API tokens and webhook
secrets the admin shows once are new in every response that shows them, and GZipMiddleware pads every answer with
a random number of bytes.
"""

from django.middleware.gzip import GZipMiddleware


class HtmlGZipMiddleware(GZipMiddleware):
    def process_response(self, request, response):
        if not response.get("Content-Type", "").startswith("text/html"):
            return response
        return super().process_response(request, response)
