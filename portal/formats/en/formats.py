# The portal writes every moment one way, with its time zone (TIME_ZONE): "2026-11-27 08:15 UTC". Pages use the
# `when` filter (portal_format); the admin and any bare {{ datetime }} follow these formats too.
DATETIME_FORMAT = "Y-m-d H:i T"
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = DATE_FORMAT
