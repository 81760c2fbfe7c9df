"""LLaRA's question pools: user prompts, detection/localization and auxiliary-dataset questions.

15 user-prompt sentences, 15 detection and 15 localization questions, and the auxiliary
datasets' 15 act_pred, 15 fut_pred, 14 spa_rel and 14 tmp_rel questions (llara-spec 3.3, 4).
Data only, copied verbatim (typos and spacing included) from LLaRA `eval/llara_prompts.py`
(identical to `eval/vima_utils.py` and the pools of `datasets/convert_vima.ipynb`; the last four
pools exist in the notebook only): the released checkpoints were trained on exactly these
strings, so `prompting` picks from them by index. Questions hold literal placeholders such as
`{object}` next to the literal `{w, h}`, so fill them with `str.replace`, never `str.format`.
"""

# LLaRA eval/llara_prompts.py action_prompts (the `--prompt-id` user prompt, spec 3.3).
ACTION_PROMPTS: tuple[str, ...] = (
    'Could you write down what needs to be done to complete the task on this scene?',
    'List out the actions needed to accomplish the task in this scene.',
    'What actions are necessary to perform the task on this scene?',
    'Can you describe what needs to be done on this scene to complete the task?',
    'What steps are required to perform the task shown in this scene?',
    'List the actions needed to perform the task given below.',
    'On the following scene, could you list what actions are required to perform the task?',
    'Describe what actions are needed on this scene to complete the task.',
    'What do you need to do on this scene to accomplish the task?',
    'List the actions required to perform the task given on this scene.',
    'Could you please describe the steps needed to perform the task on this scene?',
    'Write down the actions required to perform the task on this scene.',
    'Please write down the actions required to perform the task shown below.',
    'Can you explain what needs to be done to perform the task in this scene?',
    'Describe the actions required to complete the task on this scene.',
)

# LLaRA eval/llara_prompts.py detection_prompts (obj_det aux questions, `d` mode for scenes).
DETECTION_PROMPTS: tuple[str, ...] = (
    'Identify and describe each object in the image. For each object, list it in the format '
    '<b>(x, y), {w, h}</b>, where x and y represent the coordinates of the bounding box center, '
    'and w and h represent the width and height of the bounding box. The image coordinates '
    'should start from the top left corner and be normalized between 0 and 1.',
    'Catalog all the objects present in the image. For every object, use the format '
    "<b>(x, y), {w, h}</b>, with x and y indicating the center of the object's bounding box "
    'coordinates, and w and h specifying the width and height. The coordinates are normalized '
    'from the top left corner, ranging from 0 to 1.',
    'List each object in the image and describe it. Use the format <b>(x, y), {w, h}</b> for '
    'each object, where x and y denote the center coordinates of the bounding box, and w and h '
    'are the width and height of the bounding box. The coordinates should start from the top '
    'left corner and be normalized to a scale of 0 to 1.',
    'Provide descriptions for all objects within the image. Each object should be listed using '
    'the format <b>(x, y), {w, h}</b>, where x and y are the coordinates of the bounding box '
    'center, and w and h are the width and height. The coordinates should be normalized, '
    'starting from the top left corner, within a range of 0 to 1.',
    'Enumerate and describe every object found in the image. For each object, utilize the '
    'format <b>(x, y), {w, h}</b>, where x, y are the bounding box center coordinates and w, h '
    'are the dimensions (width and height) of the bounding box. The coordinates begin at the top '
    'left corner and are normalized between 0 and 1.',
    'Detail all the objects within the image, listing each one using the format '
    '<b>(x, y), {w, h}</b>. Here, x and y represent the coordinates of the bounding box center, '
    'while w and h indicate the width and height. The coordinates start from the top left '
    'corner and are normalized to the range of 0 to 1.',
    'Document each object present in the image. For each object, use the format '
    '<b>(x, y), {w, h}</b>, where x and y are the coordinates of the center of the bounding box, '
    'and w and h are the width and height. The coordinates should be normalized, starting from '
    'the top left corner, and range from 0 to 1.',
    'For each object in the image, provide a description using the format <b>(x, y), {w, h}</b>. '
    'Here, x and y denote the coordinates of the bounding box center, and w and h represent the '
    'width and height of the bounding box. The coordinates are normalized to a scale of 0 to 1, '
    'starting from the top left corner.',
    'Describe all the objects seen in the image, and list them using the format '
    '<b>(x, y), {w, h}</b>. The x and y values are the coordinates for the center of the '
    'bounding box, while w and h represent its width and height. The coordinates should be '
    'normalized from the top left corner, within a range of 0 to 1.',
    'Identify and list each object found in the image. For each one, use the format '
    '<b>(x, y), {w, h}</b>. In this format, x and y are the coordinates for the bounding box '
    'center, and w and h are the width and height. The coordinates are to be normalized '
    'starting from the top left corner, ranging from 0 to 1.',
    'List and describe each object in the image using the format <b>(x, y), {w, h}</b>. Here, x '
    'and y correspond to the coordinates of the bounding box center, and w and h specify the '
    'width and height of the bounding box. The coordinates should start from the top left '
    'corner and be normalized to the range of 0 to 1.',
    'Provide a description for each object in the image, formatted as <b>(x, y), {w, h}</b>. '
    'The x and y values indicate the center coordinates of the bounding box, while w and h '
    'represent the width and height. The coordinates start from the top left corner and are '
    'normalized between 0 and 1.',
    'Catalog each object within the image, using the format <b>(x, y), {w, h}</b> for each one. '
    'In this format, x and y are the coordinates for the center of the bounding box, and w and h '
    'are the width and height. The coordinates should be normalized, beginning at the top left '
    'corner and ranging from 0 to 1.',
    'Enumerate all the objects in the image, providing descriptions for each using the format '
    '<b>(x, y), {w, h}</b>. The x and y values represent the center coordinates of the bounding '
    'box, while w and h indicate its width and height. The coordinates are normalized starting '
    'from the top left corner, within a range of 0 to 1.',
    'Describe each object in the image, listing them in the format <b>(x, y), {w, h}</b>. Here, '
    'x and y denote the center coordinates of the bounding box, and w and h specify the width '
    'and height. The coordinates should be normalized from the top left corner, ranging from 0 '
    'to 1.',
)

# LLaRA eval/llara_prompts.py localization_prompts (obj_loc aux questions, `d` mode for one
# object); `{object}` is replaced by the `<p>..</p>` phrase.
LOCALIZATION_PROMPTS: tuple[str, ...] = (
    'Where is {object} located in the image? Please use the format <b>(x, y), {w, h}</b> where x '
    'and y represent the center coordinates of the bounding box, and w and h are the width and '
    'height. The coordinates start from the top left corner and are normalized to a scale of 0 '
    'to 1.',
    'Can you provide the location of {object} in the image? Format it as <b>(x, y), {w, h}</b>, '
    'with x and y as the center coordinates of the bounding box and w and h as the width and '
    'height. The coordinates should begin at the top left corner and be normalized from 0 to 1.',
    'What are the coordinates of {object} in the image? Use the format <b>(x, y), {w, h}</b>, '
    'where x and y are the center of the bounding box, and w and h represent the width and '
    'height. Coordinates should start at the top left corner and be normalized to a range of 0 '
    'to 1.',
    'Please specify the location of {object} in the image. List it in the format '
    '<b>(x, y), {w, h}</b>, where x and y denote the bounding box center coordinates, and w and '
    'h are the width and height. The coordinates begin from the top left corner and should be '
    'normalized to 0 to 1.',
    'What is the position of {object} within the image? Use the format <b>(x, y), {w, h}</b> to '
    'describe it, with x and y as the center coordinates of the bounding box, and w and h as the '
    'width and height. The coordinates start at the top left corner and are normalized to a '
    'scale of 0 to 1.',
    'Describe the location of {object} in the image using the format <b>(x, y), {w, h}</b>. In '
    'this format, x and y denote the center coordinates of the bounding box, while w and h '
    'represent its width and height. Coordinates should be normalized from the top left corner, '
    'ranging from 0 to 1.',
    'Can you detail the location of {object} in the image? Format it as <b>(x, y), {w, h}</b>, '
    'where x and y indicate the bounding box center, and w and h represent the width and height. '
    'The coordinates should be normalized to a scale of 0 to 1 starting from the top left corner.',
    'Provide the location of {object} in the image using the format <b>(x, y), {w, h}</b>. Here, '
    'x and y are the center coordinates of the bounding box, and w and h are the width and '
    'height. The coordinates begin at the top left corner and are normalized from 0 to 1.',
    'Where is {object} positioned in the image? Use the format <b>(x, y), {w, h}</b>, where x and '
    'y denote the center coordinates of the bounding box, and w and h are the width and height. '
    'The coordinates should be normalized to a range of 0 to 1 starting from the top left corner.',
    'Specify the location of {object} in the image in the format <b>(x, y), {w, h}</b>. In this '
    'format, x and y represent the bounding box center, and w and h are the width and height. '
    'The coordinates should start from the top left corner and be normalized between 0 and 1.',
    'What is the exact position of {object} in the image? Format the coordinates as '
    '<b>(x, y), {w, h}</b>, where x and y are the center of the bounding box and w and h denote '
    'its width and height. The coordinates start from the top left corner and are normalized to '
    'a scale of 0 to 1.',
    'Describe where {object} is located in the image using the format <b>(x, y), {w, h}</b>. '
    'Here, x and y indicate the bounding box center coordinates, and w and h specify its width '
    'and height. The coordinates should be normalized starting from the top left corner, within '
    'the range of 0 to 1.',
    'Could you tell me the location of {object} in the image? Use the format '
    '<b>(x, y), {w, h}</b>, where x and y denote the center of the bounding box and w and h are '
    'the width and height. Coordinates start at the top left corner and should be normalized '
    'between 0 and 1.',
    'Provide the coordinates of {object} in the image in the format <b>(x, y), {w, h}</b>. Here, '
    'x and y are the center of the bounding box, while w and h represent its width and height. '
    'The coordinates should start from the top left corner and be normalized to 0 to 1.',
    'How is the {object} located in the image? List its coordinates using the format '
    '<b>(x, y), {w, h}</b>, where x and y are the center coordinates of the bounding box, and w '
    'and h indicate its width and height. The coordinates begin at the top left corner and are '
    'normalized to a range of 0 to 1.',
)

# LLaRA datasets/convert_vima.ipynb prompt_act_pred (act_pred aux questions, spec 4): `{scene}`
# is replaced by the next frame's scene description (`{w, h}` stays literal).
ACT_PRED_PROMPTS: tuple[str, ...] = (
    'Could you detail the steps needed to transform the scene shown in the image into the second '
    'scene? The second scene is provided as a collection of object bounding boxes {scene}. The '
    'format for these bounding boxes is <b>(x, y), {w, h}</b>, where x and y represent the '
    'center coordinates, and w and h are the width and height. The coordinates should be '
    'normalized to a scale of 0 to 1, starting from the top left corner.',
    'Can you describe what actions are required to rearrange the scene shown in the image to '
    'match the second scene? The second scene is given as a set of object bounding boxes '
    '{scene}. These bounding boxes follow the format <b>(x, y), {w, h}</b>, where x and y '
    'indicate the center coordinates, and w and h represent the width and height. The '
    'coordinates should start from the top left corner and be normalized to a scale of 0 to 1.',
    'Could you list the steps necessary to modify the scene shown in the image to the second '
    'scene? The second scene is described as a collection of object bounding boxes {scene}. The '
    'bounding box format is <b>(x, y), {w, h}</b>, with x and y denoting the center coordinates, '
    'and w and h representing the width and height. The coordinates are normalized to a scale of '
    '0 to 1, starting from the top left corner.',
    'Can you explain what needs to be done to adjust the scene shown in the image to resemble '
    'the second scene? The second scene {scene} consists of object bounding boxes provided in '
    'the format <b>(x, y), {w, h}</b>. Here, x and y represent the center coordinates, and w and '
    'h are the width and height. The coordinates should start from the top left corner and be '
    'normalized to a scale of 0 to 1.',
    'Could you outline the necessary actions to arrange the scene shown in the image into the '
    'second scene? The second scene is defined by a collection of object bounding boxes {scene}. '
    'These bounding boxes follow the format <b>(x, y), {w, h}</b>, where x and y denote the '
    'center coordinates, and w and h are the width and height. The coordinates start from the '
    'top left corner and should be normalized to a scale of 0 to 1.',
    'Can you specify what needs to be done to convert the scene shown in the image into the '
    'second scene? The second scene is provided as a series of object bounding boxes {scene}. '
    'The format for these bounding boxes is <b>(x, y), {w, h}</b>, with x and y representing the '
    'center coordinates, and w and h indicating the width and height. Coordinates should be '
    'normalized from the top left corner to a scale of 0 to 1.',
    'Could you describe the steps required to change the scene shown in the image to the second '
    'scene? The second scene is depicted as a collection of object bounding boxes {scene}. The '
    'bounding box format is <b>(x, y), {w, h}</b>, where x and y denote the center coordinates, '
    'and w and h represent the width and height. The coordinates are normalized to a scale of 0 '
    'to 1 starting from the top left corner.',
    'Can you list the actions necessary to transform the scene shown in the image into the '
    'second scene? The second scene is described using object bounding boxes {scene}. The format '
    'of these bounding boxes is <b>(x, y), {w, h}</b>, where x and y are the center coordinates, '
    'and w and h represent the width and height. Coordinates should be normalized to a scale of '
    '0 to 1 starting from the top left corner.',
    'Could you explain the process to arrange the scene shown in the image to match the second '
    'scene? The second scene is provided as a collection of object bounding boxes {scene}. These '
    'bounding boxes are formatted as <b>(x, y), {w, h}</b>, where x and y represent the center '
    'coordinates, and w and h are the width and height. The coordinates should start from the '
    'top left corner and be normalized to a scale of 0 to 1.',
    'Can you detail what needs to be done to rearrange the scene shown in the image to the '
    'second scene? The second scene is given as a series of object bounding boxes {scene}. The '
    'bounding box format is <b>(x, y), {w, h}</b>, where x and y denote the center coordinates, '
    'and w and h represent the width and height. Coordinates should be normalized to a scale of '
    '0 to 1 starting from the top left corner.',
    'Could you specify the steps needed to modify the scene shown in the image to resemble the '
    'second scene? The second scene is described as a set of object bounding boxes {scene}. '
    'These bounding boxes follow the format <b>(x, y), {w, h}</b>, where x and y represent the '
    'center coordinates, and w and h indicate the width and height. The coordinates start from '
    'the top left corner and should be normalized to a scale of 0 to 1.',
    'Can you outline the necessary actions to change the scene shown in the image into the '
    'second scene? The second scene {scene} consists of object bounding boxes provided in the '
    'format <b>(x, y), {w, h}</b>, where x and y denote the center coordinates, and w and h '
    'represent the width and height. Coordinates should be normalized to a scale of 0 to 1 '
    'starting from the top left corner.',
    'Could you describe the steps to adjust the scene shown in the image to the second scene? '
    'The second scene is given as a collection of object bounding boxes {scene}. The format for '
    'these bounding boxes is <b>(x, y), {w, h}</b>, where x and y represent the center '
    'coordinates, and w and h are the width and height. The coordinates should start from the '
    'top left corner and be normalized to a scale of 0 to 1.',
    'Can you explain what needs to be done to transform the scene shown in the image into the '
    'second scene? The second scene is depicted using object bounding boxes {scene}. The '
    'bounding box format is <b>(x, y), {w, h}</b>, with x and y representing the center '
    'coordinates, and w and h indicating the width and height. The coordinates start from the '
    'top left corner and are normalized to a scale of 0 to 1.',
    'Could you detail the steps necessary to convert the scene shown in the image to the second '
    'scene? The second scene is described as a set of object bounding boxes {scene}. These '
    'bounding boxes follow the format <b>(x, y), {w, h}</b>, where x and y represent the center '
    'coordinates, and w and h denote the width and height. The coordinates should be normalized '
    'to a scale of 0 to 1 starting from the top left corner.',
)

# LLaRA datasets/convert_vima.ipynb prompt_fut_pred (fut_pred aux questions): `{pick up and
# drop}` is replaced by the step sentence, first word lower-cased, final period dropped.
FUT_PRED_PROMPTS: tuple[str, ...] = (
    'The image shows a scene with multiple objects. Now you {pick up and drop}, what will the '
    'scene look like? List the object bounding boxes. The bounding box format is <b>(x, y), {w, '
    'h}</b>, where x and y represent the center coordinates of the bounding box, and w and h are '
    'its width and height. The coordinates should start from the top left corner and be '
    'normalized to a scale of 0 to 1.',
    'An image depicts a scene containing multiple objects. Now you {pick up and drop}, what will '
    'the scene look like? Write the list of object bounding boxes. The bounding boxes should be '
    'formatted as <b>(x, y), {w, h}</b>, where x and y denote the center coordinates, and w and '
    'h are the width and height. The coordinates start from the top left corner and are '
    'normalized to a scale of 0 to 1.',
    'The image presents a scene with several objects. Now you {pick up and drop}, what will the '
    'scene look like? List the object bounding boxes. The format for these bounding boxes is '
    '<b>(x, y), {w, h}</b>, where x and y represent the center coordinates, and w and h are the '
    'width and height. Coordinates should start from the top left corner and be normalized to a '
    'scale of 0 to 1.',
    'Displayed in the image is a scene containing multiple objects. Now you {pick up and drop}, '
    'what will the scene look like? Write down the list of object bounding boxes. These bounding '
    'boxes follow the format <b>(x, y), {w, h}</b>, with x and y as the center coordinates, and '
    'w and h as the width and height. The coordinates should be normalized starting from the top '
    'left corner to a scale of 0 to 1.',
    'The image illustrates a scene with multiple objects. Now you {pick up and drop}, what will '
    'the scene look like? Write the list of object bounding boxes. The bounding boxes are '
    'formatted as <b>(x, y), {w, h}</b>, where x and y denote the center coordinates, and w and '
    'h represent the width and height. Coordinates should start from the top left corner and be '
    'normalized to a scale of 0 to 1.',
    'The image depicts a scene with several objects. Now you {pick up and drop}, what will the '
    'scene look like? List the object bounding boxes. The bounding box format is <b>(x, y), {w, '
    'h}</b>, where x and y represent the center coordinates, and w and h denote the width and '
    'height. The coordinates should be normalized to a scale of 0 to 1 starting from the top '
    'left corner.',
    'In the image, there is a scene with multiple objects. Now you {pick up and drop}, what will '
    'the scene look like? Write the list of object bounding boxes. The format of these bounding '
    'boxes is <b>(x, y), {w, h}</b>, where x and y indicate the center coordinates, and w and h '
    'represent the width and height. The coordinates start from the top left corner and are '
    'normalized to a scale of 0 to 1.',
    'An image shows a scene with various objects. Now you {pick up and drop}, what will the '
    'scene look like? Write down the list of object bounding boxes. The bounding boxes follow '
    'the format <b>(x, y), {w, h}</b>, where x and y denote the center coordinates, and w and h '
    'are the width and height. The coordinates should start from the top left corner and be '
    'normalized to a scale of 0 to 1.',
    'The image presents a scene containing several objects. Now you {pick up and drop}, what '
    'will the scene look like? List the object bounding boxes. The bounding box format is <b>(x, '
    'y), {w, h}</b>, where x and y represent the center coordinates, and w and h are the width '
    'and height. Coordinates should start from the top left corner and be normalized to a scale '
    'of 0 to 1.',
    'The image displays a scene with multiple objects. Now you {pick up and drop}, what will the '
    'scene look like? Write the list of object bounding boxes. The bounding boxes should be in '
    'the format <b>(x, y), {w, h}</b>, where x and y denote the center coordinates, and w and h '
    'represent the width and height. The coordinates should start from the top left corner and '
    'be normalized to a scale of 0 to 1.',
    'An image illustrates a scene with multiple objects. Now you {pick up and drop}, what will '
    'the scene look like? Write down the list of object bounding boxes. These bounding boxes are '
    'formatted as <b>(x, y), {w, h}</b>, where x and y represent the center coordinates, and w '
    'and h denote the width and height. Coordinates should be normalized to a scale of 0 to 1 '
    'starting from the top left corner.',
    'The image shows a scene with various objects. Now you {pick up and drop}, what will the '
    'scene look like? List the object bounding boxes. The format for these bounding boxes is '
    '<b>(x, y), {w, h}</b>, with x and y representing the center coordinates, and w and h as the '
    'width and height. Coordinates should start from the top left corner and be normalized to a '
    'scale of 0 to 1.',
    'Displayed in the image is a scene containing multiple objects. Now you {pick up and drop}, '
    'what will the scene look like? Write the list of object bounding boxes. The bounding box '
    'format is <b>(x, y), {w, h}</b>, where x and y denote the center coordinates, and w and h '
    'are the width and height. The coordinates start from the top left corner and are normalized '
    'to a scale of 0 to 1.',
    'The image illustrates a scene with various objects. Now you {pick up and drop}, what will '
    'the scene look like? List the object bounding boxes. The bounding boxes are formatted as '
    '<b>(x, y), {w, h}</b>, where x and y indicate the center coordinates, and w and h represent '
    'the width and height. Coordinates should be normalized from the top left corner to a scale '
    'of 0 to 1.',
    'An image depicts a scene with multiple objects. Now you {pick up and drop}, what will the '
    'scene look like? Write the list of object bounding boxes. The bounding box format is <b>(x, '
    'y), {w, h}</b>, where x and y represent the center coordinates, and w and h denote the '
    'width and height. The coordinates should start from the top left corner and be normalized '
    'to a scale of 0 to 1.',
)

# LLaRA datasets/convert_vima.ipynb prompt_spa_rel (spa_rel aux questions): `{Putego}`,
# `{Putref}` are object phrases, `{example}` another pair's answer.
SPA_REL_PROMPTS: tuple[str, ...] = (
    'Can you describe the relative spatial locations of {Putego} compared to {Putref} in this '
    'image? Use relative location words like left, right, above, below, etc. Also, find the 2D '
    'center distance and the Euclidean center distance between them. Your output must follow '
    'this format: {example}. The coordinates are image coordinates normalized to a scale of 0 to '
    '1 starting from the top left corner.',
    'Could you describe the relative spatial positions of {Putego} in comparison to {Putref} in '
    'this image? Use terms like left, right, above, below, etc. Also, calculate the 2D center '
    'distance and the Euclidean center distance between them. Your output should be formatted as '
    'follows: {example}. The coordinates are image coordinates normalized to a scale of 0 to 1 '
    'starting from the top left corner.',
    'Please describe the relative spatial locations of {Putego} compared to {Putref} in this '
    'image. Use words like left, right, above, below, etc. Additionally, find the 2D center '
    'distance and the Euclidean center distance between them. Your output must be in this '
    'format: {example}. The coordinates are image coordinates normalized to a scale of 0 to 1 '
    'starting from the top left corner.',
    'Can you explain the relative spatial positions of {Putego} compared to {Putref} in this '
    'image? Use terms such as left, right, above, below, etc. Also, determine the 2D center '
    'distance and the Euclidean center distance between them. Your output should match this '
    'format: {example}. The coordinates are image coordinates normalized to a scale of 0 to 1 '
    'starting from the top left corner.',
    'Describe the relative spatial locations of {Putego} compared to {Putref} in this image '
    'using words like left, right, above, below, etc. Also, calculate the 2D center distance and '
    'the Euclidean center distance between them. Your output must follow this format: {example}. '
    'The coordinates are image coordinates normalized to a scale of 0 to 1 starting from the top '
    'left corner.',
    'Could you describe the spatial relationship between {Putego} and {Putref} in this image '
    'using relative location words like left, right, above, below, etc.? Also, find the 2D '
    'center distance and the Euclidean center distance between them. Your output should be '
    'formatted as follows: {example}. The coordinates are image coordinates normalized to a '
    'scale of 0 to 1 starting from the top left corner.',
    'Can you detail the relative spatial positions of {Putego} compared to {Putref} in this '
    'image? Use words like left, right, above, below, etc. Also, determine the 2D center '
    'distance and the Euclidean center distance between them. Your output must be in this '
    'format: {example}. The coordinates are image coordinates normalized to a scale of 0 to 1 '
    'starting from the top left corner.',
    'Could you explain the spatial relationship between {Putego} and {Putref} in this image '
    'using terms such as left, right, above, below, etc.? Also, calculate the 2D center distance '
    'and the Euclidean center distance between them. Your output should match this format: '
    '{example}. The coordinates are image coordinates normalized to a scale of 0 to 1 starting '
    'from the top left corner.',
    'Describe the relative spatial positions of {Putego} compared to {Putref} in this image. Use '
    'relative location words like left, right, above, below, etc. Also, find the 2D center '
    'distance and the Euclidean center distance between them. Your output must follow this '
    'format: {example}. The coordinates are image coordinates normalized to a scale of 0 to 1 '
    'starting from the top left corner.',
    'Can you describe how {Putego} is positioned relative to {Putref} in this image using words '
    'such as left, right, above, below, etc.? Also, find the 2D center distance and the '
    'Euclidean center distance between them. Your output should be in this format: {example}. '
    'The coordinates are image coordinates normalized to a scale of 0 to 1 starting from the top '
    'left corner.',
    'Could you detail the relative positions of {Putego} compared to {Putref} in this image '
    'using terms like left, right, above, below, etc.? Also, calculate the 2D center distance '
    'and the Euclidean center distance between them. Your output must be formatted as follows: '
    '{example}. The coordinates are image coordinates normalized to a scale of 0 to 1 starting '
    'from the top left corner.',
    'Please describe the spatial relationship of {Putego} in comparison to {Putref} in this '
    'image using relative location terms such as left, right, above, below, etc. Additionally, '
    'find the 2D center distance and the Euclidean center distance between them. Your output '
    'should match this format: {example}. The coordinates are image coordinates normalized to a '
    'scale of 0 to 1 starting from the top left corner.',
    'Can you describe the relative spatial locations of {Putego} compared to {Putref} in this '
    'image? Use relative location words like left, right, above, below, etc. Also, calculate the '
    '2D center distance and the Euclidean center distance between them. Your output should '
    'follow this format: {example}. The coordinates are image coordinates normalized to a scale '
    'of 0 to 1 starting from the top left corner.',
    'Could you describe the spatial locations of {Putego} relative to {Putref} in this image '
    'using words such as left, right, above, below, etc.? Additionally, find the 2D center '
    'distance and the Euclidean center distance between them. Your output must be in this '
    'format: {example}. The coordinates are image coordinates normalized to a scale of 0 to 1 '
    'starting from the top left corner.',
)

# LLaRA datasets/convert_vima.ipynb prompt_tmp_rel (tmp_rel aux questions): as SPA_REL_PROMPTS
# plus `{scene}`, the next frame's scene description.
TMP_REL_PROMPTS: tuple[str, ...] = (
    'The image shows a scene at the first timestamp, while the second image described as {scene} '
    'shows the next timestamp. Can you describe the change in the relative location of {Putego} '
    'compared to {Putref} between these two timestamps? Use relative distance words like getting '
    'closer or further away, etc. Also, find the change in the 2D center distance and the '
    'Euclidean center distance between the two images. Your output must follow this format: '
    '{example}. The coordinates are image coordinates normalized to a scale of 0 to 1 starting '
    'from the top left corner.',
    'In the first timestamp, the image shows a scene, and the second image described as {scene} '
    'depicts the next timestamp. Can you describe the change in the relative location of '
    '{Putego} compared to {Putref} between these two timestamps? Use terms like getting closer '
    'or moving further away, etc. Additionally, find the change in the 2D center distance and '
    'the Euclidean center distance between the two images. Your output must follow this format: '
    '{example}. The coordinates are image coordinates normalized to a scale of 0 to 1 starting '
    'from the top left corner.',
    'The scene in the first image is at the initial timestamp, and the second image described as '
    '{scene} shows the subsequent timestamp. Can you explain the change in the relative location '
    'of {Putego} compared to {Putref} between these two timestamps? Use words like getting '
    'closer or moving further apart, etc. Also, calculate the change in the 2D center distance '
    'and the Euclidean center distance between the two images. Your output should be formatted '
    'as follows: {example}. The coordinates are image coordinates normalized to a scale of 0 to '
    '1 starting from the top left corner.',
    'At the first timestamp, the image shows a scene, and the second image described as {scene} '
    'represents the next timestamp. Can you detail the change in the relative location of '
    '{Putego} compared to {Putref} between these two timestamps? Use relative distance words '
    'like moving closer or getting further away, etc. Additionally, find the change in the 2D '
    'center distance and the Euclidean center distance between the two images. Your output must '
    'follow this format: {example}. The coordinates are image coordinates normalized to a scale '
    'of 0 to 1 starting from the top left corner.',
    'The first image shows a scene at an initial timestamp, and the second image described as '
    '{scene} depicts the next timestamp. Can you describe the change in the relative position of '
    '{Putego} compared to {Putref} between these two timestamps? Use terms such as getting '
    'closer or moving further apart, etc. Also, determine the change in the 2D center distance '
    'and the Euclidean center distance between the two images. Your output should follow this '
    'format: {example}. The coordinates are image coordinates normalized to a scale of 0 to 1 '
    'starting from the top left corner.',
    'The initial timestamp shows a scene in the first image, and the second image described as '
    '{scene} represents the next timestamp. Can you describe how the relative location of '
    '{Putego} compared to {Putref} changes between these two timestamps? Use relative distance '
    'words like getting closer or moving further away, etc. Also, find the change in the 2D '
    'center distance and the Euclidean center distance between the two images. Your output must '
    'be in this format: {example}. The coordinates are image coordinates normalized to a scale '
    'of 0 to 1 starting from the top left corner.',
    'The image shows a scene at the first timestamp, and the second image described as {scene} '
    'shows the subsequent timestamp. Can you detail the change in the relative location of '
    '{Putego} compared to {Putref} between these two timestamps? Use words like getting closer '
    'or moving further apart, etc. Also, calculate the change in the 2D center distance and the '
    'Euclidean center distance between the two images. Your output should be formatted as '
    'follows: {example}. The coordinates are image coordinates normalized to a scale of 0 to 1 '
    'starting from the top left corner.',
    'At the initial timestamp, the image shows a scene, and the second image described as '
    '{scene} depicts the next timestamp. Can you describe the change in the relative position of '
    '{Putego} compared to {Putref} between these two timestamps? Use relative distance terms '
    'such as getting closer or moving further away, etc. Also, find the change in the 2D center '
    'distance and the Euclidean center distance between the two images. Your output must follow '
    'this format: {example}. The coordinates are image coordinates normalized to a scale of 0 to '
    '1 starting from the top left corner.',
    'The scene in the first image is at the initial timestamp, and the second image described as '
    '{scene} shows the following timestamp. Can you describe the change in the relative location '
    'of {Putego} compared to {Putref} between these two timestamps? Use words like getting '
    'closer or moving further apart, etc. Additionally, calculate the change in the 2D center '
    'distance and the Euclidean center distance between the two images. Your output should '
    'follow this format: {example}. The coordinates are image coordinates normalized to a scale '
    'of 0 to 1 starting from the top left corner.',
    'The first image shows a scene at an initial timestamp, and the second image described as '
    '{scene} depicts the next timestamp. Can you explain how the relative location of {Putego} '
    'compared to {Putref} changes between these two timestamps? Use relative distance words like '
    'moving closer or getting further away, etc. Also, determine the change in the 2D center '
    'distance and the Euclidean center distance between the two images. Your output must follow '
    'this format: {example}. The coordinates are image coordinates normalized to a scale of 0 to '
    '1 starting from the top left corner.',
    'The image shows a scene at the initial timestamp, and the second image described as {scene} '
    'shows the next timestamp. Can you describe the change in the relative position of {Putego} '
    'compared to {Putref} between these two timestamps? Use words like getting closer or moving '
    'further apart, etc. Also, calculate the change in the 2D center distance and the Euclidean '
    'center distance between the two images. Your output should follow this format: {example}. '
    'The coordinates are image coordinates normalized to a scale of 0 to 1 starting from the top '
    'left corner.',
    'At the first timestamp, the image shows a scene, and the second image described as {scene} '
    'depicts the next timestamp. Can you detail how the relative location of {Putego} compared '
    'to {Putref} changes between these two timestamps? Use relative distance terms such as '
    'moving closer or getting further away, etc. Also, find the change in the 2D center distance '
    'and the Euclidean center distance between the two images. Your output must follow this '
    'format: {example}. The coordinates are image coordinates normalized to a scale of 0 to 1 '
    'starting from the top left corner.',
    'The initial timestamp shows a scene in the first image, and the second image described as '
    '{scene} represents the next timestamp. Can you describe the change in the relative location '
    'of {Putego} compared to {Putref} between these two timestamps? Use words like getting '
    'closer or moving further apart, etc. Also, determine the change in the 2D center distance '
    'and the Euclidean center distance between the two images. Your output should follow this '
    'format: {example}. The coordinates are image coordinates normalized to a scale of 0 to 1 '
    'starting from the top left corner.',
    'The first image shows a scene at the initial timestamp, and the second image described as '
    '{scene} shows the following timestamp. Can you describe how the relative position of '
    '{Putego} compared to {Putref} changes between these two timestamps? Use terms like moving '
    'closer or getting further away, etc. Additionally, find the change in the 2D center '
    'distance and the Euclidean center distance between the two images. Your output must follow '
    'this format: {example}. The coordinates are image coordinates normalized to a scale of 0 to '
    '1 starting from the top left corner.',
)
