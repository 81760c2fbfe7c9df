"""ament_python package of the LLaRA runtime (core library, policy, sim, arms, ROS nodes)."""
from setuptools import find_packages, setup

PACKAGE = 'llara_policy'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={PACKAGE: ['data/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
    ],
    install_requires=['setuptools', 'numpy', 'pyyaml'],
    # colcon runs pytest only when it finds a 'test' extra (tests_require is ignored
    # by setuptools >= 72 and colcon then silently runs zero tests).
    extras_require={'test': ['pytest', 'hypothesis']},
    zip_safe=True,
    maintainer='LLaRA ROS maintainers',
    maintainer_email='maintainers@llara-ros.invalid',
    description='LLaRA runtime: core library, VLM policy, simulator, arm adapters, ROS 2 nodes.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'loopback_probe = llara_policy.ros.loopback_probe:main',
            'perception_node = llara_policy.ros.perception_node:main',
            'executor_node = llara_policy.ros.executor_node:main',
            'sim_node = llara_policy.ros.sim_node:main',
            'policy_node = llara_policy.ros.policy_node:main',
            'task_node = llara_policy.ros.task_node:main',
            'recorder_node = llara_policy.ros.recorder_node:main',
            'llara_sim_render = llara_policy.sim.render:main',
            'llara_import_checkpoint = llara_policy.model.checkpoint_import:main',
            'llara_calibrate = llara_policy.geometry.calibration_tool:main',
        ],
    },
)
