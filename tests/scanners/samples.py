"""The report files the tests feed in: the simulators' builders, and hostile XML."""

from simulators.reports import JTL_HEADER, cucumber_report, jtl_csv, trivy_report, trivy_vulnerability  # noqa: F401

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<testResults version="1.2"><httpSample t="1" ts="1700000000000" s="true" lb="&lol9;"/></testResults>
"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE testResults [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<testResults version="1.2"><httpSample t="1" ts="1700000000000" s="true" lb="&secret;"/></testResults>
"""


TRANSACTION_MESSAGE = "Number of samples in transaction : 2, number of failing samples : 0"


def jtl_csv_with_transactions(rows: list[tuple[int, int, str, bool]], transactions: tuple[str, ...]) -> bytes:
    """jtl_csv (labels without commas), with the rows of the labels in `transactions` written as JMeter writes a
    Transaction Controller's sample: its response message, and no dataType."""
    lines = jtl_csv(rows).decode().splitlines()
    for index, line in enumerate(lines[1:], start=1):
        fields = line.split(",")  # timeStamp, elapsed, label, responseCode, responseMessage, threadName, dataType
        if fields[2] in transactions:
            fields[4], fields[6] = f'"{TRANSACTION_MESSAGE}"', ""
            lines[index] = ",".join(fields)
    return ("\n".join(lines) + "\n").encode()


def jtl_xml_without_timing(rows: list[tuple[str, bool]]) -> bytes:
    """An XML JTL saved without elapsed (t) nor start (ts) times; rows: (label, success)."""
    samples = "".join(f'<httpSample s="{str(ok).lower()}" lb="{label}" rc="200" rm="OK" by="10"/>\n'
                      for label, ok in rows)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<testResults version="1.2">\n{samples}</testResults>\n'.encode()
