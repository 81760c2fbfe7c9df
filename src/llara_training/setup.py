"""LLaRA training package: ament_python for colcon, and pip-installable on its own."""
from setuptools import find_packages, setup

PACKAGE = 'llara_training'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
    ],
    # llara_policy is not listed: colcon provides it in a workspace, and a plain pip
    # install of the training package needs `pip install ./src/llara_policy` first.
    install_requires=['setuptools', 'numpy', 'pyyaml', 'pillow', 'rosbags', 'tqdm', 'rich',
                      'matplotlib', 'torch', 'transformers', 'peft', 'accelerate'],
    # QLoRA (mode=qlora) also needs bitsandbytes with CUDA; ZeRO-3 needs deepspeed.
    extras_require={'test': ['pytest', 'hypothesis'], 'qlora': ['bitsandbytes'],
                    'zero3': ['deepspeed']},
    zip_safe=True,
    maintainer='LLaRA ROS maintainers',
    maintainer_email='maintainers@llara-ros.invalid',
    description='LLaRA data conversion, auxiliary datasets, fine-tuning and evaluation.',
    license='Apache-2.0',
    entry_points={'console_scripts': ['llara_training = llara_training.__main__:main']},
)
