"""Generate the README's llara_msgs table from the comments in the .msg/.srv/.action files.

Each field is documented by the comment block directly above it (and/or an inline
comment). `python tools/interfaces_table.py` prints the markdown table; the README
holds it between the `interfaces-table` markers and tests/test_interfaces.py checks
that the two are identical and that no field is undocumented.
"""
from dataclasses import dataclass
from pathlib import Path
import re
import sys

ROOT = Path(__file__).resolve().parents[1]
INTERFACE_DIR = ROOT / 'src' / 'llara_msgs'
SECTIONS = {'.msg': ('',), '.srv': ('request', 'response'),
            '.action': ('goal', 'result', 'feedback')}
FIELD = re.compile(r'^(?P<type>[A-Za-z0-9_/\[\]<=]+)\s+(?P<name>[A-Za-z0-9_]+)'
                   r'(?:\s*=\s*(?P<value>[^#]+?))?\s*(?:#\s*(?P<inline>.*))?$')


@dataclass(frozen=True)
class Field:
    """One field or constant of an interface, with its documentation."""

    interface: str
    section: str
    type_name: str
    name: str
    constant_value: str
    doc: str


def parse_interface(path: Path) -> list[Field]:
    """Return the fields of one interface file in order, each with its comment text."""
    fields, pending = [], []
    sections = iter(SECTIONS[path.suffix])
    section = next(sections)
    interface = f'{path.parent.name}/{path.stem}'
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line == '---':
            section, pending = next(sections), []
        elif not line:
            pending = []
        elif line.startswith('#'):
            text = line.lstrip('#').strip()
            if not text.startswith('---'):
                pending.append(text)
        else:
            match = FIELD.match(line)
            if not match:
                raise ValueError(f'{path}: cannot read line {raw!r}')
            doc = ' '.join(pending + [match['inline'] or '']).strip()
            fields.append(Field(interface, section, match['type'], match['name'],
                                (match['value'] or '').strip(), doc))
            if not match['value']:
                pending = []
    return fields


def all_fields() -> list[Field]:
    """Return the fields of every llara_msgs interface: msg first, then srv, then action."""
    files = [path for sub in ('msg', 'srv', 'action')
             for path in sorted((INTERFACE_DIR / sub).iterdir())]
    return [f for path in files for f in parse_interface(path)]


def markdown_table() -> str:
    """Render the README table: one row per field, then the constants in one line."""
    rows = ['| Interface | Part | Field | Type | Meaning and units |',
            '|---|---|---|---|---|']
    for field in all_fields():
        if field.constant_value:
            continue
        doc = field.doc.replace('|', '\\|')
        rows.append(f'| `{field.interface}` | {field.section or "-"} | `{field.name}` | '
                    f'`{field.type_name}` | {doc} |')
    constants = [f for f in all_fields() if f.constant_value]
    rows.append('')
    rows.append('Constants: ' + ', '.join(
        f'`{f.interface.split("/")[1]}.{f.name}={f.constant_value}`' for f in constants) + '.')
    return '\n'.join(rows)


if __name__ == '__main__':
    sys.stdout.write(markdown_table() + '\n')
