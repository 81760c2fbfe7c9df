"""Add up pytest JUnit XML reports and print one closing line: `total: N passed, N failed`.

`make test` runs several pytest sessions (one per colcon package, plus tests/); CI and
people read a single total at the end.
"""
from pathlib import Path
import sys
import xml.etree.ElementTree as ET


def main(paths: list[str]) -> int:
    """Print the summed counts of the given report files; exit 1 if none could be read."""
    totals = {'tests': 0, 'failures': 0, 'errors': 0, 'skipped': 0}
    read = 0
    for path in paths:
        if not Path(path).is_file():
            continue
        root = ET.parse(path).getroot()
        suites = [root] if root.tag == 'testsuite' else root.findall('testsuite')
        for suite in suites:
            for key in totals:
                totals[key] += int(suite.get(key, 0))
        read += 1
    failed = totals['failures'] + totals['errors']
    passed = totals['tests'] - failed - totals['skipped']
    print(f'total: {passed} passed, {failed} failed, {totals["skipped"]} skipped '
          f'({read} report files)')
    return 0 if read else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
