"""ament_python package holding the LLaRA launch files, configs and graph declarations."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'llara_bringup'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', glob('launch/*.launch.py')),
        ('share/' + PACKAGE + '/config', glob('config/*.yaml')),
        # The shipped demo policy (make demo): weights, tokenizer, processor, reports.
        ('share/' + PACKAGE + '/models/demo_policy', glob('models/demo_policy/*.*')),
        ('share/' + PACKAGE + '/models/demo_policy/eval', glob('models/demo_policy/eval/*')),
    ],
    install_requires=['setuptools', 'pyyaml'],
    extras_require={'test': ['pytest']},
    zip_safe=True,
    maintainer='LLaRA ROS maintainers',
    maintainer_email='maintainers@llara-ros.invalid',
    description='Launch files, configs and the graph declaration of the LLaRA stack.',
    license='Apache-2.0',
    entry_points={'console_scripts': ['llara_task = llara_bringup.operator:main']},
)
